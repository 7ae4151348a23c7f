"""Renders the configuration table of the README from the Settings model itself, so the
documented names, defaults and environment variables cannot drift from the code.

``python -m worker.config_doc`` prints the Markdown table; ``--write`` updates README.md.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, SecretStr

from worker.settings import Settings


def _default(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def rows() -> Iterator[tuple[str, str, str, str]]:
    """(file key, default, env name, description) for every setting."""
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if typing.get_origin(model) is dict:  # [jobs.<name>]: one JSON object per name
            per_name = typing.get_args(model)[1]
            for name, sub in per_name.model_fields.items():
                env = f"SEEN_{section.upper()}_<NAME>"
                meaning = f"{sub.description or ''}; unset = as the job declares (env: JSON object)"
                yield f"{section}.<name>.{name}", _default(sub.default), env, meaning
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for name, sub in model.model_fields.items():
            key = sub.alias or name
            env = f"SEEN_{section}_{key}".upper()
            yield f"{section}.{key}", _default(sub.default), env, sub.description or ""


def markdown() -> str:
    lines = ["| setting | default | environment | meaning |", "| --- | --- | --- | --- |"]
    for key, default, env, description in rows():
        lines.append(f"| `{key}` | `{default}` | `{env}` | {description} |")
    return "\n".join(lines)


def write_readme(path: Path = Path("README.md")) -> None:
    """Replace the table between the README's ``settings-table`` markers."""
    text = path.read_text(encoding="utf-8")
    start, end = "<!-- settings-table -->\n", "<!-- /settings-table -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{start}{markdown()}\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write_readme()
    else:
        print(markdown())
