"""Peak RSS of every process of a command, workers included: ``/usr/bin/time`` reports only the
processes it waits for, and a worker of ``--jobs N`` is the fork server's child, not the command's.

    python bench/peak_rss.py rightsmeta scan big.tar small.tar --purpose genai-training --jobs 2 --out out

Polls each process's ``/proc/PID/status`` VmHWM (its own peak, so a poll after the peak still
sees it) every 0.1 s while the command runs; prints the main process's and the others' largest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:  # gone meanwhile
        pass
    return out


def _hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main() -> None:
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak: dict[int, int] = {}
    while proc.poll() is None:
        todo, tree = [proc.pid], []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += _children(pid)
        for pid in tree:
            if (kb := _hwm(pid)) is not None:
                peak[pid] = max(peak.get(pid, 0), kb)
        time.sleep(0.1)
    main_kb = peak.pop(proc.pid, 0)
    print(f"exit {proc.returncode}; main process {main_kb} KB; the others' largest (KB): {sorted(peak.values(), reverse=True)[:4]}")


if __name__ == "__main__":
    main()
