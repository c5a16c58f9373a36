"""The token file a local Ray writes when ``scan --engine ray`` starts one: readable by its user only."""

from __future__ import annotations

import multiprocessing
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def test_a_token_file_of_the_users_is_left_alone_and_none_is_made_where_ray_makes_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rightsmeta.datasets.ray_engine import _private_token

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    token = tmp_path / ".ray" / "auth_token"
    for name, value in (("RAY_AUTH_MODE", "disabled"), ("RAY_AUTH_TOKEN", "cd" * 32), ("RAY_AUTH_TOKEN_PATH", "/elsewhere")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            _private_token()
        assert not token.exists(), name
    _private_token()
    assert re.fullmatch("[0-9a-f]{64}", token.read_text()) and stat.S_IMODE(token.stat().st_mode) == 0o600
    assert stat.S_IMODE(token.parent.stat().st_mode) == 0o700 and os.listdir(token.parent) == ["auth_token"]
    token.write_text("ab" * 32)
    token.chmod(0o644)  # the user's own choice, made before
    _private_token()
    assert stat.S_IMODE(token.stat().st_mode) == 0o644 and token.read_text() == "ab" * 32


def _start(barrier: Any, tokens: Any) -> None:
    # What a local ray.init does about its token, with Ray's own code, after scan_ray's preparation.
    from ray._private.authentication import authentication_token_setup as ray_token

    from rightsmeta.datasets.ray_engine import _private_token

    path = Path.home() / ".ray" / "auth_token"
    _private_token()
    barrier.wait()
    tokens.put(path.read_text())  # what either Ray finds first
    ray_token.enable_token_auth_by_default()
    ray_token.ensure_token_if_auth_enabled(create_token_if_missing=True)
    tokens.put(path.read_text())


def test_two_local_starts_at_once_share_one_whole_private_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found: the empty 0600 file made first was read by a second start as "no token", so both Rays
    wrote their own token into it (open(path, "w"): each reading the other's half-written), and one
    start's cleanup could remove it under the other, which then wrote it 0644."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    spawn = multiprocessing.get_context("spawn")
    barrier, tokens = spawn.Barrier(2), spawn.Queue()
    starts = [spawn.Process(target=_start, args=(barrier, tokens)) for _ in range(2)]
    for start in starts:
        start.start()
    for start in starts:
        start.join(60)
        assert start.exitcode == 0
    token = tmp_path / ".ray" / "auth_token"
    found = {tokens.get(timeout=5) for _ in range(4)}
    assert found == {token.read_text()} and re.fullmatch("[0-9a-f]{64}", token.read_text())
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
