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


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """Path to ffmpeg (with ffprobe beside it), used to make real audio/video files and decode them.

    Missing ffmpeg fails the run under CI (env CI set; .ci/setup installs it) and skips elsewhere.
    """
    import shutil

    found = shutil.which("ffmpeg")
    if found and shutil.which("ffprobe"):
        return found
    message = "ffmpeg and ffprobe not found (apt-get install ffmpeg)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def poppler() -> dict[str, str]:
    """Paths of pdfinfo, pdftotext and pdfsig (poppler-utils): independent PDF readers.

    Missing tools fail the run under CI (.ci/setup installs them) and skip elsewhere.
    """
    import shutil

    found = {name: shutil.which(name) for name in ("pdfinfo", "pdftotext", "pdfsig")}
    if not all(found.values()):
        _missing("poppler-utils not found (apt-get install poppler-utils)")
    return {name: str(path) for name, path in found.items()}


@pytest.fixture(scope="session")
def qpdf() -> str:
    """Path to qpdf, whose --check validates a PDF's cross-reference structure."""
    import shutil

    found = shutil.which("qpdf")
    if not found:
        _missing("qpdf not found (apt-get install qpdf)")
    return str(found)


@pytest.fixture(scope="session")
def epubcheck() -> list[str]:
    """The command that runs EPUBCheck (Debian package epubcheck).

    Debian's /usr/bin/epubcheck is an executable jar that needs binfmt_misc (absent in most
    containers), so the jar is run with java; C1-only compilation halves its start-up time.
    """
    import shutil

    jar = Path("/usr/share/java/epubcheck.jar")
    java = shutil.which("java")
    if java and jar.is_file():
        return [java, "-XX:TieredStopAtLevel=1", "-jar", str(jar)]
    found = shutil.which("epubcheck")
    if not found:
        _missing("epubcheck not found (apt-get install epubcheck)")
    return [str(found)]


@pytest.fixture(autouse=True)
def _isolated_user_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the developer's own ledger or signing identity."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("RIGHTSMETA_LEDGER", str(home / "ledger.sqlite3"))
    monkeypatch.setenv("RIGHTSMETA_IDENTITY", str(home / "identity"))
    for name in ("RIGHTSMETA_CERT", "RIGHTSMETA_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def chromium() -> list[str]:
    """Headless Chromium (Debian package chromium), to see the HTML report as a person would."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        _missing("chromium not found (apt-get install chromium)")
    # The flags keep it from reaching for the network, which this machine does not have.
    return [str(found), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
