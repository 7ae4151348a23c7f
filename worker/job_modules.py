"""The jobs of this deployment: ours and those of ``worker.job_modules`` (``jobs.loading``).

The worker, ``arq worker.settings.WorkerSettings``, the dashboard and the fleet reader call
``load_jobs``; a module that cannot be loaded, a clash of names or a ``[jobs.<name>]`` section
naming no job is a ``SettingsError`` (one line; exit 2 from ``seen-worker``, like every setting).
"""

from __future__ import annotations

from jobs.loading import RegistryError, load_registry
from jobs.registry import JobRegistry
from worker.settings import Settings, SettingsError


def load_jobs(settings: Settings) -> JobRegistry:
    """Import the job modules (once per process: Python keeps them) and build the registry."""
    try:
        return load_registry(settings.worker.job_modules, settings.jobs)
    except RegistryError as exc:
        raise SettingsError(str(exc)) from None
