"""Renders the configuration table of the README from the Settings model itself, so the
documented names, defaults and environment variables cannot drift from the code.

``python -m worker.config_doc`` prints the Markdown table.
"""

from __future__ import annotations

from collections.abc import Iterator

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


if __name__ == "__main__":
    print(markdown())
