"""The coalescing put script the Go and Node clients ship is the Python side's, byte for byte.

Go cannot embed a file outside its module, and an npm package ships only its own folder, so
each client keeps a copy of cache/scripts/download_pending_put.lua; `make sync-clients`
refreshes them. A copy that differs would run another script under another SHA.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.toolchain import GO_DIR, NODE_DIR, ROOT

pytestmark = pytest.mark.unit

ORIGINAL = ROOT / "cache" / "scripts" / "download_pending_put.lua"
COPIES = [GO_DIR / "scripts" / ORIGINAL.name, NODE_DIR / "scripts" / ORIGINAL.name]


@pytest.mark.parametrize("copy", COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_client_copy_is_the_script(copy: Path) -> None:
    where = copy.relative_to(ROOT)
    assert copy.exists(), f"{where} is missing: run `make sync-clients`"
    assert copy.read_bytes() == ORIGINAL.read_bytes(), f"{where} differs: run `make sync-clients`"
