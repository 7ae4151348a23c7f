"""The batched job engine of ``SeenWorker``: claim due jobs in batches, finish them in batches.

ARQ claims each job with a WATCH/MULTI transaction, reads its record and counts its try in a
second one and finishes it in a third (about 17 store commands and 3-4 round trips per job).
Here one script claims every due id a poll read (``claim``), and the finishes of all jobs that
end while a finish is on its way are sent together in one script (``finish``), each still
guarded by its lease token. Keys, records and results stay ARQ's own (docs/wire-format.md), so
plain ARQ producers, ``Job.result()``/``Job.status()`` and plain ARQ workers work alongside.
"""
