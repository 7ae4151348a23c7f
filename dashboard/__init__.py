"""``seen-worker dashboard``: a small web app over the stores (docs/dashboard.md), a process of
its own. It imports ``worker`` and ``jobs``; only the CLI imports it.

Modules, one concept each: ``server`` (bind rules, uvicorn), ``app`` (routes, middlewares,
lifespan), ``context`` (what every endpoint needs, made once) and ``state`` (the owned
connections), ``pages`` (the table of pages and their shared endpoint), ``readers`` (what each
page shows), ``endpoints`` (the stream, login, ``/metrics``, ``/livez``), ``actions`` (requeue,
run now, retry / cancel / delete, pause / resume) with ``notices`` (what an action did, shown
on the next page) and ``forms``, ``render`` (templates and filters), ``security`` (token,
cookie, CSRF, headers, Host), ``hub`` (one stream reader fanned out), ``stream`` (one SSE
response: catch-up then live), ``cursor`` and ``frames`` (the SSE wire format), ``exporter``
(the fleet's ``seen_fleet_*`` series), ``failures`` (how a failed read is worded).
"""
