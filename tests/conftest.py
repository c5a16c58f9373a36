"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parent.parent
_EXIFTOOL_CANDIDATES = (
    _REPO / ".ci" / "tools" / "node_modules" / "exiftool-vendored.pl" / "bin" / "exiftool",
    Path("/tmp/npmx/node_modules/exiftool-vendored.pl/bin/exiftool"),
)


@pytest.fixture(scope="session")
def exiftool() -> str:
    """Path to an ExifTool 13.x executable, used to write samples no Python library can.

    Looked up in $RIGHTSMETA_EXIFTOOL, then the CI tools directory, then /tmp/npmx. Missing
    ExifTool fails the run under CI (env CI set) and skips the test elsewhere.
    """
    candidates = [Path(os.environ["RIGHTSMETA_EXIFTOOL"])] if os.environ.get("RIGHTSMETA_EXIFTOOL") else []
    candidates += _EXIFTOOL_CANDIDATES
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    message = "ExifTool 13.x not found (set RIGHTSMETA_EXIFTOOL or install it under .ci/tools)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
