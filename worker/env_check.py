"""Which ``SEEN_*`` environment variables are settings, and what to say about the others.

pydantic-settings silently ignores a variable it cannot place (``SEEN_WORKERS_MAX_JOBS``), so a
typo leaves the default in force without a word. Before settings are built, every ``SEEN_*``
variable (names compared case-insensitively, as pydantic-settings reads them) is sorted:

- a setting (``SEEN_<SECTION>_<NAME>``, or ``SEEN_<SECTION>`` holding the section as JSON):
  fine, and a JSON-valued one must parse as JSON;
- a known non-setting variable (``NOT_SETTINGS``): fine;
- a known section with an unknown name, a section close to a real one, or a whole name close
  to a setting's: an error naming the nearest valid variable (or the section's names);
- anything else: a warning (the ``SEEN_`` prefix may be shared with other services' variables).
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

PREFIX = "SEEN_"

NOT_SETTINGS: Mapping[str, str] = {
    "SEEN_SETTINGS_FILE": "the settings file to read",
    "SEEN_EMBEDDED_SERVER": "server binary of `run --embedded`, `demo` and the tests",
    "SEEN_TEST_SERVER": "server binary of the test suite",
    "SEEN_TEST_CLUSTER": "1: run the cache-layer tests on a real Redis Cluster",
    "SEEN_TEST_REDIS_URL": "an existing server for the test suite",
    "SEEN_TEST_SLOW_SECONDS": "duration of the tests' slow warmup source",
    "SEEN_TEST_BUSY_SECONDS": "duration of the tests' store-busy warmup source",
    "SEEN_TEST_INTERVALS": "file where the tests' interval warmup source records its runs",
    "SEEN_TEST_STOP_TRIALS": "how many SIGTERM trials the stop-bound test runs",
    "SEEN_TEST_QUEUE_LAYOUT": "the queue layout a test lane runs on (arq or sharded; also the "
    "Go and Node end-to-end tests' worker)",
    "SEEN_TEST_CLIENTS": "0: the Go and Node producer suites are skipped in this lane",
    "SEEN_TEST_REDIS_ADDR": "the Go and Node producer tests: the test server",
    "SEEN_TEST_SPARE_DB": "the Go and Node producer tests: a database they may flush",
    "SEEN_TEST_PREFIX": "the Go and Node producer tests: their ids' prefix",
    "SEEN_TEST_QUEUE_SHARDS": "the Go and Node producer tests: shards of the sharded layout",
    "SEEN_CONFORMANCE_VECTORS": "the Go and Node producer tests: the vectors folder",
    "SEEN_COMPAT_MONITOR": "test suite: MONITOR lane",
    "SEEN_COMPAT_LUA54": "test suite: Lua 5.4 lane",
    "SEEN_COMPAT_REQUIRE_ALL": "test suite: every script ran in the Lua 5.4 lane",
    "SEEN_BENCH_SERVER": "server binary of the benchmarks",
    "SEEN_TEST_TRACEPARENT": "the Go and Node end-to-end tests: the trace their jobs carry",
}
"""``SEEN_*`` variables that are not settings, with what reads them."""

_SECTION_CUTOFF = 0.75
_NAME_CUTOFF = 0.6
_WHOLE_CUTOFF = 0.8


@dataclass
class EnvReport:
    """The outcome of ``check_environment``: ``errors`` stop start-up, ``ignored`` are
    warnings."""

    errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _json_valued(annotation: Any) -> bool:
    """Whether pydantic-settings expects JSON for a field of this type (lists, models...)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_json_valued(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (list, tuple, set, frozenset, dict):
        return True
    return isinstance(annotation, type) and issubclass(
        annotation, BaseModel | list | tuple | set | frozenset | dict
    )


def _section_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for section, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out[section.upper()] = sub
    return out


def map_sections(model: type[BaseModel]) -> set[str]:
    """Sections keyed by a name of the user's choosing (``[jobs.<name>]``), upper-cased: their
    variables are ``SEEN_<SECTION>_<KEY>`` holding one entry as a JSON object, or
    ``SEEN_<SECTION>`` holding them all."""
    return {
        section.upper()
        for section, info in model.model_fields.items()
        if typing.get_origin(info.annotation) is dict
    }


def sections(model: type[BaseModel]) -> dict[str, dict[str, FieldInfo]]:
    """``{SECTION: {NAME: field}}`` of every section model of ``model``, upper-cased as in
    the environment (a field's alias is its name there)."""
    return {
        section: {(f.alias or name).upper(): f for name, f in sub.model_fields.items()}
        for section, sub in _section_models(model).items()
    }


def _aliased(model: type[BaseModel], section: str, name: str) -> str | None:
    """The env name of a field called ``name`` in Python but otherwise in the environment."""
    sub = _section_models(model).get(section)
    field = sub.model_fields.get(name.lower()) if sub is not None else None
    return field.alias.upper() if field is not None and field.alias else None


def _nearest(word: str, options: typing.Iterable[str], cutoff: float) -> str | None:
    found = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return found[0] if found else None


def env_name(section: str, name: str = "") -> str:
    """``SEEN_<SECTION>_<NAME>`` (or ``SEEN_<SECTION>``) of a setting."""
    return f"{PREFIX}{section}_{name}".upper() if name else f"{PREFIX}{section}".upper()


def nearest_setting(model: type[BaseModel], section: str, name: str = "") -> tuple[str, str] | None:
    """``(section, name)`` of the setting closest to ``section.name`` (name "" for a whole
    section), lower-case; None when nothing is close."""
    known = sections(model)
    section, name = section.upper(), name.upper()
    real = section if section in known else _nearest(section, known, _SECTION_CUTOFF)
    if real is not None:
        if not name:
            return real.lower(), ""
        key = name if name in known[real] else _aliased(model, real, name)
        key = key or _nearest(name, known[real], _NAME_CUTOFF)
        if key is not None:
            return real.lower(), key.lower()
    whole = {f"{s}_{k}": (s.lower(), k.lower()) for s, keys in known.items() for k in keys}
    found = _nearest(f"{section}_{name}" if name else section, whole, _WHOLE_CUTOFF)
    return whole[found] if found else None


def _check_json(env: str, value: str, setting: str, example: str) -> str | None:
    try:
        json.loads(value)
    except ValueError as exc:
        return f"setting {setting}: not valid JSON ({exc}); write it as {example} (env {env})"
    except RecursionError:
        return f"setting {setting}: JSON nested too deeply (env {env})"
    return None


def check_environment(environ: Mapping[str, str], model: type[BaseModel]) -> EnvReport:
    """Sort every ``SEEN_*`` variable of ``environ`` against the sections of ``model``."""
    report = EnvReport()
    known = sections(model)
    keyed = map_sections(model)
    for env, value in sorted(environ.items()):
        upper = env.upper()
        if not upper.startswith(PREFIX) or upper in NOT_SETTINGS:
            continue
        section, sep, name = upper[len(PREFIX) :].partition("_")
        if section in keyed:
            dotted = f"{section.lower()}.{name.lower()}" if sep else section.lower()
            problem = _check_json(env, value, dotted, 'a JSON object, e.g. {"every": 60}')
            if problem:
                report.errors.append(problem)
            continue
        if section in known and (not sep or name in known[section]):
            dotted = section.lower() if not sep else f"{section.lower()}.{name.lower()}"
            if not sep:
                problem = _check_json(env, value, dotted, 'a JSON object, e.g. {"name": 1}')
            elif _json_valued(known[section][name].annotation):
                problem = _check_json(env, value, dotted, 'JSON, e.g. ["a", "b"] for a list')
            else:
                problem = None
            if problem:
                report.errors.append(problem)
            continue
        near = nearest_setting(model, section, name)
        real = section if section in known else _nearest(section, known, _SECTION_CUTOFF)
        if near is not None:
            hint = f"; did you mean {env_name(*near)}?"
        elif real is not None:
            names = ", ".join(env_name(real, k) for k in known[real])
            hint = f"; valid names: {names}"
        else:
            hint = ""
        if section in known:
            report.errors.append(
                f"unknown setting variable {env}: [{section.lower()}] has no setting "
                f"{name.lower()!r}{hint}"
            )
        elif real is not None or near is not None:
            report.errors.append(f"unknown setting variable {env}{hint}")
        else:
            report.ignored.append(
                f"ignoring environment variable {env}: not a setting (settings are "
                f"SEEN_<SECTION>_<NAME>, SECTION one of {', '.join(sorted(known)).lower()})"
            )
    return report
