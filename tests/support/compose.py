"""docker-compose.yml as Compose reads it, without Docker: variable interpolation by the Compose
specification's rules, so a test can show what ``docker compose up`` does with an environment.

``interpolate(document, env)`` substitutes every string of a parsed compose file:

- ``$$`` is a literal ``$``;
- ``$VAR`` and ``${VAR}``: the value, or ``""`` when unset;
- ``${VAR:-default}`` (unset or empty) and ``${VAR-default}`` (unset): the default;
- ``${VAR:?message}`` (unset or empty) and ``${VAR?message}`` (unset): Compose stops with
  ``message`` before creating anything: ``ComposeError`` here;
- ``${VAR:+other}`` (set and not empty) and ``${VAR+other}`` (set): ``other``, else ``""``.

``references(text)`` lists every ``${...}`` of a file with its operator, for rules such as
"a secret has no default".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)"
    rf"|\{{(?P<braced>{_NAME})(?:(?P<op>:?[-?+])(?P<arg>[^}}]*))?\}}"
    rf"|(?P<plain>{_NAME}))"
)


class ComposeError(Exception):
    """What ``docker compose`` would stop with (a required variable is missing)."""


@dataclass(frozen=True)
class Reference:
    """One ``${NAME<op><arg>}`` (``op`` is "" for ``$NAME`` / ``${NAME}``)."""

    name: str
    op: str
    arg: str


def references(text: str) -> list[Reference]:
    found = []
    for match in _TOKEN.finditer(text):
        if match["escaped"]:
            continue
        name = match["braced"] or match["plain"]
        found.append(Reference(name, match["op"] or "", match["arg"] or ""))
    return found


def _substitute(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"] or "", match["arg"] or ""
        value = env.get(name)
        missing = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if missing else str(value)
        if op.endswith("?"):
            if missing:
                raise ComposeError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        if op.endswith("+"):
            return "" if missing else arg
        return value or ""

    return _TOKEN.sub(one, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` (a parsed compose file or part of it) with every string substituted."""
    if isinstance(node, str):
        return _substitute(node, env)
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    return node
