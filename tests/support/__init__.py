"""Shared helpers of the tests: worker processes (``processes``), progress updates
(``updates``), polling and reading the store (``waiting``), warmup sources run inside worker
processes by dotted path (``sources``)."""
