"""The prompt registry: versioned, labelled prompts with strict templates.

- :mod:`.template` — the mustache-style (and sandboxed Jinja2) template engine
- :mod:`.model` — names, labels, content hash, diffs (shared by server, SDK and CLI)
- :mod:`.registry` — saving versions, moving labels, resolving and rendering with a cache
- :mod:`.api` — ``/api/prompts`` routes; :mod:`.cli` — ``pilothouse prompts``
- :mod:`.files` — prompts as code (YAML/Markdown folders); :mod:`.client` — HTTP client
- :mod:`.plugin` — wires it all in, including gateway rendering of ``"prompt"`` references
"""
