"""``seen-worker dashboard``: a small web app over the stores (docs/dashboard.md).

Modules, one concept each: ``server`` (bind rules, uvicorn), ``app`` (routes, lifespan),
``state`` (owned connections), ``security`` (token, cookie, CSRF, headers), ``hub`` (one stream
reader fanned out), ``stream`` (one SSE response: catch-up then live), ``cursor`` and
``frames`` (the SSE wire format), ``readers`` (page data), ``actions`` (requeue, run now).
"""
