"""The token file a local Ray writes when ``scan --engine ray`` starts one: readable by its user only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from samples import image_bytes
from test_datasets import _tar

pytest.importorskip("ray")
pytest.importorskip("ray.data")

ROOT = Path(__file__).resolve().parent.parent


def _scan(home: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    shard = tmp_path / "shard-000000.tar"
    _tar(shard, [("a.png", image_bytes("png"))])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    return subprocess.run([sys.executable, "-m", "rightsmeta", "scan", str(shard), "--purpose", "genai-training", "--engine", "ray", "--jobs", "2",
                           "--jsonl", "--out", str(tmp_path / "out"), *extra],
                          capture_output=True, text=True, env=env, timeout=180)


def test_the_token_of_a_local_ray_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run = _scan(home, tmp_path, "--ray-address", "local")
    assert run.returncode in (0, 1), run.stderr[-3000:]
    token = home / ".ray" / "auth_token"
    assert len(token.read_text().strip()) >= 32  # Ray wrote its token: the one its cluster was started with
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700


def test_a_token_file_of_the_users_is_left_alone_and_none_is_left_when_ray_makes_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rightsmeta.datasets.ray_engine import _private_token

    monkeypatch.setenv("HOME", str(tmp_path))
    token = tmp_path / ".ray" / "auth_token"
    with _private_token():  # a Ray that needed no token: nothing written
        assert token.stat().st_size == 0
    assert not token.exists() and stat.S_IMODE(token.parent.stat().st_mode) == 0o700
    with _private_token():
        token.write_text("ab" * 32)  # as Ray writes it: open(path, "w")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    token.chmod(0o644)  # the user's own choice, made before
    with _private_token():
        pass
    assert stat.S_IMODE(token.stat().st_mode) == 0o644 and token.read_text() == "ab" * 32
