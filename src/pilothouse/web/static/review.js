// Annotation queue shortcuts: digits or y/n pick a value of the active criterion (then the next
// criterion becomes active), j/k move between criteria, Enter saves and opens the next item.
(function () {
  "use strict";
  var form = document.getElementById("review-form");
  if (!form) { return; }
  var criteria = Array.prototype.slice.call(form.querySelectorAll("[data-criterion]"));
  var active = 0;

  function activate(index) {
    if (!criteria.length) { return; }
    active = Math.max(0, Math.min(index, criteria.length - 1));
    criteria.forEach(function (c, i) { c.classList.toggle("active", i === active); });
  }

  criteria.forEach(function (c, i) {
    c.addEventListener("focusin", function () { activate(i); });
    c.addEventListener("click", function () { activate(i); });
  });
  activate(0);

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || tag === "select" || (tag === "input" && event.target.type !== "radio") || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      activate(active + (event.key === "j" ? 1 : -1));
      var first = criteria[active].querySelector("input");
      if (first) { first.focus(); }
      return;
    }
    if (event.key === "Enter" && tag !== "a" && tag !== "button" && tag !== "select") {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    var choice = criteria[active] && criteria[active].querySelector('input[data-key="' + event.key + '"]');
    if (choice) {
      event.preventDefault();
      choice.checked = true;
      activate(active + 1);
    }
  });
})();
