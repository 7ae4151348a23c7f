"""The worker's HTTP surface: ``/metrics``, ``/livez``, ``/readyz`` (``metrics``, ``server``)."""
