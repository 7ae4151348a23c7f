"""Reading a POSTed form: ``application/x-www-form-urlencoded``, at most ``MAX_FORM_BYTES``
(no multipart parser: the dashboard's forms are small and plain)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request

MAX_FORM_BYTES = 64 * 1024


class FormError(ValueError):
    """The form could not be read (too large); the message says why."""


async def read_form(request: Request) -> dict[str, list[str]]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormError("form too large")
    return parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=1000)


def first(form: dict[str, list[str]], name: str) -> str:
    """The first value of ``name`` in the form, stripped ("" when absent)."""
    return (form.get(name) or [""])[0].strip()
