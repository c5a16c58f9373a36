"""Worker processes, started the one way every parallel path of rightsmeta uses (verify, scan, serve).

Workers come from a fork server (spawn where there is none): they never inherit the caller's
threads, sockets or locks, which a fork of a threaded program (a server) would copy half-held.

multiprocessing re-runs the caller's main script in every such worker, by its path, so that
objects defined there can be unpickled. Our workers only run functions of rightsmeta, so they
start without it. Re-running it did harm: a script without an ``if __name__ == "__main__":``
guard (README's library example, pasted into a file) ran again in every worker, tagging its
files again, and each worker died when the script started its own pool, failing the files it
was given; a script read from standard input (``python - <<EOF``) has the path ``<stdin>``,
which no worker can open: each died in start-up, and a ``multiprocessing.Pool`` replaced it
forever (a hang), a ``ProcessPoolExecutor`` reported every file lost. Nothing global is changed.
"""

from __future__ import annotations

import io
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import context, forkserver, popen_forkserver, reduction, spawn, util
from typing import Any


def default_jobs() -> int:
    """The cores this process may run on: what ``--jobs 0`` (one worker per core) starts."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _preparation(name: str) -> dict[str, Any]:
    """What a worker is told to set up before it runs: the stock data, less the caller's main
    script or module."""
    data: dict[str, Any] = spawn.get_preparation_data(name)
    data.pop("init_main_from_path", None)
    data.pop("init_main_from_module", None)
    return data


class _Popen(popen_forkserver.Popen):
    def _launch(self, process_obj: Any) -> None:
        # The standard library's forkserver launch (3.11-3.13), with _preparation in place of
        # spawn.get_preparation_data: the one line that differs.
        prep_data = _preparation(process_obj._name)
        buf = io.BytesIO()
        context.set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            context.set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _Process(context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


class _Context(context.ForkServerContext):
    Process = _Process


def start_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """The context workers start from. ``preload``: modules the fork server imports once, so each
    worker forks with them loaded instead of importing them itself (the fork server is one per
    process: the list is the last caller's)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = _Context()
    if preload:
        ctx.set_forkserver_preload(list(preload))
    return ctx


def executor(workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...] = (),
             preload: Sequence[str] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, each set up once by ``initializer(*initargs)``."""
    return ProcessPoolExecutor(workers, mp_context=start_context(preload), initializer=initializer, initargs=initargs)


__all__ = ["executor", "start_context"]
