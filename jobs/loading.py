"""Build the registry at start-up: our job modules, then ``worker.job_modules``.

Every problem is one line naming the setting, raised as ``RegistryError`` (the worker turns it
into a configuration error: exit 2, like every setting):

- a module that cannot be imported (missing, or failing while it is imported);
- a listed module that declares no job (a typo'd path, or a package that only imports them);
- two jobs with one name (two modules, or a module clashing with one of ours);
- a ``[jobs.<name>]`` section naming no loaded job, or ``every`` set for a job that is not
  periodic.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Mapping, Sequence

from jobs.config import JobSection
from jobs.errors import JobError
from jobs.registry import JobRegistry, declared_in

BUILTIN_MODULES = ("jobs.probe", "jobs.progress", "jobs.maintenance")
"""Our own job modules, loaded first and declared like any other team's."""

MODULES_SETTING = "setting worker.job_modules"
MODULES_WHERE = "(file key 'worker.job_modules' or env SEEN_WORKER_JOB_MODULES)"


class RegistryError(JobError):
    """A job module or a ``[jobs.<name>]`` section that cannot be used (one line)."""


def _import(name: str) -> Mapping[str, object]:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        if name == missing or name.startswith(missing + "."):
            raise RegistryError(
                f"{MODULES_SETTING}: no module named {name!r} on this Python's path "
                f"({sys.executable}); install the package that holds it {MODULES_WHERE}"
            ) from None
        raise RegistryError(
            f"{MODULES_SETTING}: importing {name!r} failed: it needs {missing!r}, which is not "
            f"installed {MODULES_WHERE}"
        ) from None
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RegistryError(
            f"{MODULES_SETTING}: importing {name!r} failed: {type(exc).__name__}: {first} "
            f"{MODULES_WHERE}"
        ) from None
    return vars(module)


def load_registry(
    modules: Sequence[str] = (), sections: Mapping[str, JobSection] | None = None
) -> JobRegistry:
    """Our jobs, then the jobs of ``modules``, checked against ``sections``."""
    registry = JobRegistry()
    for name in (*BUILTIN_MODULES, *modules):
        found = declared_in(name, _import(name))
        if not found and name not in BUILTIN_MODULES:
            raise RegistryError(
                f"{MODULES_SETTING}: module {name!r} declares no job (decorate its jobs with "
                f"@job or @periodic from the jobs package, in that module or below it) "
                f"{MODULES_WHERE}"
            )
        for definition in found:
            try:
                registry.add(definition)
            except ValueError as exc:
                raise RegistryError(f"{MODULES_SETTING}: {exc} {MODULES_WHERE}") from None
    check_sections(registry, sections or {})
    return registry


def check_sections(registry: JobRegistry, sections: Mapping[str, JobSection]) -> None:
    """Each ``[jobs.<name>]`` names a loaded job; ``every`` only for a periodic one."""
    for name, section in sections.items():
        where = f"(file section [jobs.{name}] or env SEEN_JOBS_{name.upper()})"
        definition = registry.get(name)
        if definition is None:
            near = difflib.get_close_matches(name, registry.names(), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise RegistryError(
                f"setting jobs.{name}: no loaded job is called {name!r} {where}{hint} "
                f"(jobs: ours and those of worker.job_modules)"
            )
        if section.every is not None and not definition.periodic:
            raise RegistryError(f"setting jobs.{name}.every: {name} is not a periodic job {where}")
