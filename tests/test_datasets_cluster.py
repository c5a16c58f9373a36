"""`rightsmeta scan --engine ray --ray-address` against a real two-node Ray cluster on this machine:
a head and a second node started with `ray start` (one CPU each, loopback only, free ports, token
authentication as Ray's default), stopped by the test whatever happens.

Not `ray stop`: it stops every Ray process of the machine, other people's clusters included. Each
`ray start --block` runs in a process group of its own (its daemons and workers inherit it), and
the test ends exactly those groups.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_datasets import SAMPLES, write_wds

from rightsmeta.datasets import scan

pytest.importorskip("ray", reason="the Ray engine's cluster test needs Ray: pip install 'rightsmeta[ray]'")
pytest.importorskip("ray.data", reason="the Ray engine's cluster test needs Ray Data: pip install 'rightsmeta[ray]'")

GENAI = "genai-training"
RAY = str(Path(sys.executable).with_name("ray"))
CAPTION = 1024 * 1024  # each kept sample carries a 1 MiB caption: writing a filtered shard shows in a node's wchar
START_SECONDS = 120  # two nodes on a loaded 2-core machine: ~15-40 s
SCAN_SECONDS = 300
HEAD, SECOND = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HEAD, 0))
        port: int = s.getsockname()[1]
        return port


def _ports() -> list[str]:
    """Every port `ray start` would otherwise take at a fixed default, chosen free on loopback."""
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
    return [x for name in names for x in (name, str(_free_port()))]


def _stop(groups: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to every node's process group (they drain together), then SIGKILL to what is left."""
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.pid, signal.SIGTERM)
    deadline = time.monotonic() + 40  # a node may drain for up to 30 s (the fixture turns that off)
    for group in groups:
        with contextlib.suppress(subprocess.TimeoutExpired):
            group.wait(max(0.1, deadline - time.monotonic()))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.pid, signal.SIGKILL)
        group.wait(10)


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _raylet_up(group: int) -> bool:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == group and Path(f"/proc/{name}/comm").read_text().strip() == "raylet":
                    return True
            except (OSError, ProcessLookupError):
                continue
    return False


def _node_group(pid: int, groups: dict[int, str]) -> int | None:
    """The `ray start` group an actor belongs to: workers lead groups of their own, so through
    their parents (the node's raylet)."""
    for _ in range(8):
        if os.getpgid(pid) in groups:
            return os.getpgid(pid)
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            break
    return None


class WriterWatch(threading.Thread):
    """Polls this machine's Ray Data actors while the scan runs: bytes each wrote (/proc/PID/io's
    wchar), by the node (`ray start` process group) it belongs to."""

    def __init__(self, groups: dict[int, str]) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.written: dict[int, int] = {}  # actor pid -> wchar last seen
        self.node: dict[int, str] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    if not Path(f"/proc/{name}/cmdline").read_bytes().startswith(b"ray::MapWorker"):
                        continue
                    group = _node_group(int(name), self.groups)
                    io = dict(line.split(": ") for line in Path(f"/proc/{name}/io").read_text().splitlines())
                except (OSError, ProcessLookupError, ValueError):
                    continue
                if group in self.groups:
                    self.node[int(name)] = self.groups[group]
                    self.written[int(name)] = int(io["wchar"])

    def by_node(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pid, node in self.node.items():
            out[node] = out.get(node, 0) + self.written[pid]
        return out


@pytest.fixture
def cluster() -> Iterator[tuple[str, dict[str, str], dict[int, str]]]:
    if not os.access(RAY, os.X_OK):
        pytest.skip(f"Ray's command line is not beside this Python ({RAY})")
    temp = tempfile.mkdtemp(prefix="rmray-", dir="/tmp")  # short: Ray's socket paths live under it
    # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S: a node told to stop waits 30 s for Serve replicas to drain; none here.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "PYTHONPATH": os.pathsep.join(p for p in [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")] if p)}
    # Ray turns 127.0.0.1 and localhost into the machine's network address (its services then listen
    # there); other loopback addresses it keeps as given: one per node, as on a real network.
    gcs = _free_port()
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    groups: list[subprocess.Popen[bytes]] = []
    logs = Path(temp) / "start"
    logs.mkdir()
    try:
        def wait(label: str, ready: Callable[[], bool]) -> None:
            deadline = time.monotonic() + START_SECONDS
            while not ready():
                group = groups[0 if label == "head" else 1]
                if group.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"ray start ({label}) did not come up: {(logs / f'{label}.log').read_text()[-3000:]}")
                time.sleep(0.5)

        # With grpcio installed (ray[client]), the head also starts a Ray Client server, on 10001 unless
        # told: a fixed port two runs at once would share. Without grpcio, Ray refuses the option.
        client = ["--ray-client-server-port", str(_free_port())] if importlib.util.find_spec("grpc") else []
        for label, args in (("head", ["--head", "--node-ip-address", HEAD, "--port", str(gcs), "--include-dashboard", "false",
                                      "--temp-dir", temp, *client]),
                            ("second", ["--address", f"{HEAD}:{gcs}", "--node-ip-address", SECOND])):
            with open(logs / f"{label}.log", "wb") as log:
                groups.append(subprocess.Popen([RAY, "start", *common, *_ports(), *args], stdout=log, stderr=subprocess.STDOUT,
                                               env=env, start_new_session=True))
            if label == "head":  # the second node can join once the head's GCS listens: both start together
                wait("head", lambda: _listening(HEAD, gcs))
        wait("head", lambda: _raylet_up(groups[0].pid))
        wait("second", lambda: _raylet_up(groups[1].pid))
        yield f"{HEAD}:{gcs}", env, {groups[0].pid: "head", groups[1].pid: "second"}
    finally:
        _stop(groups[::-1])
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.filterwarnings("ignore")
def test_scan_on_a_two_node_cluster_equals_the_local_engine(cluster: tuple[str, dict[str, str], dict[int, str]],
                                                            tmp_path: Path) -> None:
    address, env, groups = cluster
    big = [{**s, "caption": b"c" * CAPTION} for s in SAMPLES]
    shards = [big[i:i + 3] for i in range(0, len(big), 3)]  # 10 shards of 3 samples
    for n, part in enumerate(shards):
        write_wds(tmp_path / f"shard-{n:06d}.tar", part)
    sources = [str(tmp_path / "shard-{000000..000009}.tar")]
    local = list(scan(sources, GENAI, out_dir=str(tmp_path / "local")))

    # Ray Data gives shards to the first actor up while the other still starts (seconds apart on a busy
    # machine): told to wait for both, each actor gets shards and the test does not depend on timing.
    env = {**env, "RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "120"}
    watch = WriterWatch(groups)
    watch.start()
    try:
        done = subprocess.run([sys.executable, "-m", "rightsmeta", "scan", *sources, "--purpose", GENAI, "--engine", "ray",
                               "--ray-address", address, "--jobs", "2", "--jsonl", "--out", str(tmp_path / "ray")],
                              capture_output=True, text=True, env=env, timeout=SCAN_SECONDS)
    finally:
        watch.done.set()
        watch.join()
    assert done.returncode == 0, done.stderr[-3000:]
    on_ray = [json.loads(line) for line in done.stdout.splitlines()]
    key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
    assert sorted(map(key, on_ray)) == sorted(map(key, local))
    for name in sorted(os.listdir(tmp_path / "local")):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()

    # Both nodes did work: the actors of each wrote filtered shards (at least one kept 1 MiB caption
    # each; an actor's own start-up writes far less).
    written = watch.by_node()
    assert set(written) == {"head", "second"}, written
    assert min(written.values()) > CAPTION, written

    # Ray's INFO lines (cluster connection, Ray Data's plans) do not reach the user; the summary does.
    noise = [line for line in done.stderr.splitlines() if " INFO " in line or "streaming_executor" in line]
    assert noise == [], noise
    assert "summary: " in done.stderr


def test_ray_errors_still_reach_the_user(tmp_path: Path) -> None:
    """Quiet is not silent: a scan against a cluster that is not there says so and exits non-zero."""
    write_wds(tmp_path / "shard-000000.tar", SAMPLES[:2])
    env: dict[str, Any] = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    done = subprocess.run([sys.executable, "-m", "rightsmeta", "scan", str(tmp_path / "shard-000000.tar"), "--purpose", GENAI,
                           "--engine", "ray", "--ray-address", f"{HEAD}:{_free_port()}"],
                          capture_output=True, text=True, env=env, timeout=SCAN_SECONDS)
    assert done.returncode != 0
    assert HEAD in done.stderr, done.stderr[-3000:]
