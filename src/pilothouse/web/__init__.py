"""The web console served at ``/``: server-rendered pages, own CSS, a little JavaScript.

Layout: :mod:`.plugin` registers the routes, :mod:`.ui` is the request plumbing (sessions,
CSRF, errors), :mod:`.sessions` signs cookies, :mod:`.charts` draws inline SVG, and
:mod:`.pages` holds one module of page handlers per area.
"""
