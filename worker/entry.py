"""The ``seen-worker`` console script: says which extra a command needs before loading it.

The base install (``pip install seen-worker``) is the cache layer and the producer API; the
commands need the ``[worker]`` extra (``dashboard`` and ``demo``: ``[dashboard]``). Without it,
one line names the extra and the exit code is 2, instead of an ImportError's traceback. Only
the standard library is imported here, so this works in the base install.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

EXTRAS: dict[str, tuple[str, ...]] = {
    "worker": (
        "arq",
        "pydantic_settings",
        "uvloop",
        "sentry_sdk",
        "rich",
        "prometheus_client",
    ),
    "dashboard": ("starlette", "uvicorn", "jinja2"),
}
"""The modules each extra brings (pyproject.toml's optional dependencies)."""


def needed_extra(argv: Sequence[str]) -> str:
    """The extra the command in ``argv`` needs: ``dashboard`` (which brings ``worker``) for
    the dashboard and the demo that serves it, ``worker`` for every other command."""
    command = next((a for a in argv if not a.startswith("-")), "")
    if command == "dashboard" or (command == "demo" and "--no-dashboard" not in argv):
        return "dashboard"
    return "worker"


def missing_extra(argv: Sequence[str]) -> str | None:
    """One line saying which extra is missing, or None when everything is installed."""
    command = next((a for a in argv if not a.startswith("-")), "")
    extra = needed_extra(argv)
    modules = EXTRAS["worker"] + (EXTRAS["dashboard"] if extra == "dashboard" else ())
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (
        f"{f'seen-worker {command}'.strip()} needs the [{extra}] extra (missing: "
        f"{', '.join(absent)}): pip install 'seen-worker[{extra}]'"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    problem = missing_extra(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    from worker.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
