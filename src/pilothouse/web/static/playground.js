// The prompt playground: run the form through the streaming endpoint and show the answer as
// it arrives. Without this file the form POSTs and the page returns with the whole answer.
(function () {
  "use strict";
  var form = document.getElementById("playground-form");
  if (!form || !window.fetch || !window.TextDecoder) { return; }
  var answer = document.getElementById("playground-answer");
  var box = document.getElementById("playground-answer-box");
  var status = document.getElementById("playground-status");
  var failure = document.getElementById("playground-error");
  var rendered = document.getElementById("playground-rendered");
  var button = form.querySelector("button[type=submit]");

  function fail(message) {
    failure.textContent = message;
    failure.hidden = false;
  }

  function showRendered(messages) {
    // Built with textContent only: prompt text is never parsed as HTML.
    rendered.textContent = "";
    var heading = document.createElement("h3");
    heading.textContent = "Rendered prompt";
    var list = document.createElement("div");
    list.className = "conversation";
    messages.forEach(function (m) {
      var item = document.createElement("div");
      item.className = "message role-" + String(m.role).toLowerCase();
      var role = document.createElement("div");
      role.className = "role";
      role.textContent = m.role;
      var text = document.createElement("pre");
      text.textContent = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
      item.appendChild(role);
      item.appendChild(text);
      list.appendChild(item);
    });
    rendered.appendChild(heading);
    rendered.appendChild(list);
  }

  function handle(event, data) {
    if (event === "rendered") { showRendered(data); }
    else if (event === "delta") { box.hidden = false; answer.textContent += data; }
    else if (event === "error") { fail(data); status.textContent = "Failed."; }
    else if (event === "done") {
      var usage = data.usage || {};
      status.textContent = (data.model || "") +
        (usage.prompt_tokens !== undefined ? " · " + usage.prompt_tokens + " tokens in, " + usage.completion_tokens + " out" : "");
    }
  }

  // Server-sent events: blocks separated by a blank line, "event:" and "data:" lines.
  function parse(block) {
    var event = "message", data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) { event = line.slice(7); }
      else if (line.indexOf("data: ") === 0) { data += line.slice(6); }
    });
    if (data) { handle(event, JSON.parse(data)); }
  }

  async function errorText(response) {
    var text = await response.text();
    var doc = new DOMParser().parseFromString(text, "text/html");
    var detail = doc.querySelector(".error-page p:not(.status)");
    return response.status + ": " + (detail ? detail.textContent : response.statusText);
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    answer.textContent = "";
    box.hidden = true;
    failure.hidden = true;
    status.textContent = "Running…";
    button.disabled = true;
    try {
      var response = await fetch(form.getAttribute("data-stream"), {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
        headers: { "Accept": "text/event-stream" }
      });
      if (!response.ok) { fail(await errorText(response)); status.textContent = "Failed."; return; }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) { break; }
        buffer += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (err) {
      fail("The connection failed: " + err);
      status.textContent = "Failed.";
    } finally {
      button.disabled = false;
    }
  });
})();
