"""The wire format in one place: queue key layouts and the shard function (``layout``).

Producers in any language write to these keys (docs/wire-format.md); the worker, the producer
API, the dashboard and the commands read them from here, so no other module concatenates a
queue key.
"""
