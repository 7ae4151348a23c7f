"""The composition root: wires settings, cache and jobs into an ARQ worker. Nothing imports it."""
