"""Worker pools started from a script read on standard input (``python - <<EOF``).

multiprocessing re-runs the main script in each worker by its path; standard input's is
``<stdin>``, which no worker can open. Before rightsmeta.pool, verify's workers all died
(every file ``unreadable``) and datasets.scan hung for good (its Pool replaced the dying
workers forever).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from rightsmeta.verify import verify_many
from rightsmeta.datasets import scan
files, shards = sys.argv[1], sys.argv[2]
rows = list(verify_many(json.loads(files), jobs=2))
print(json.dumps([r["status"] for r in rows]))
rows = list(scan(json.loads(shards), "ai-training", jobs=2))
print(json.dumps([r["decision"] for r in rows]))
"""


def _png(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _shard(path: Path, data: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        for name in ("0001.png", "0002.png"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_verify_and_scan_with_workers_from_a_stdin_script(tmp_path: Path) -> None:
    files = [str(tmp_path / f"{i}.png") for i in range(3)]
    data = b""
    for name in files:
        data = _png(Path(name))
    shards = [str(tmp_path / f"shard-{i}.tar") for i in range(2)]
    for shard in shards:
        _shard(Path(shard), data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Run from another folder, as a user's script would be: the worktree's rightsmeta comes from PYTHONPATH.
    done = subprocess.run([sys.executable, "-", json.dumps(files), json.dumps(shards)], input=SCRIPT, text=True,
                          capture_output=True, timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "FileNotFoundError" not in done.stderr
    statuses, decisions = (json.loads(line) for line in done.stdout.splitlines())
    assert statuses == ["untagged"] * 3
    assert len(decisions) == 4 and set(decisions) == {"keep"}, decisions


UNGUARDED = """
import sys
from rightsmeta import Assertion, api
with open(sys.argv[2], "a") as runs:  # each run of this script, in whichever process
    runs.write("run\\n")
results = list(api.tag_iter(api.walk([sys.argv[1]], recursive=True), Assertion.build(deny=["ai"]), jobs=2))
print(" ".join(r.status for r in results))
"""


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    # README's library example pasted into a file: every worker used to run it again (tagging its
    # files again) and die starting a pool of its own, so the folder's files failed.
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        _png(photos / f"{i}.png")
    script, runs = tmp_path / "tag_folder.py", tmp_path / "runs.txt"
    script.write_text(UNGUARDED)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), str(photos), str(runs)], text=True, capture_output=True,
                          timeout=60, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["tagged"] * 3, done.stderr[-2000:]
    assert runs.read_text() == "run\n"
