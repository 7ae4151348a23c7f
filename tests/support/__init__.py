"""Shared helpers of the tests: worker processes (``processes``), progress updates
(``updates``), polling and reading the store (``waiting``), warmup sources run inside worker
processes by dotted path (``sources``; ``partition`` for the fenced-lock source), hosts as
network namespaces (``netns``)."""
