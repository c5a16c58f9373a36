"""Datasets: decide and filter the samples of WebDataset tar shards, Parquet files and folders.

    >>> from rightsmeta.datasets import decide_sample
    >>> decide_sample(data, meta, "genai-training").keep             # doctest: +SKIP

:func:`decide_sample` is the per-sample decision (pure, thread-safe); :func:`scan` runs it over
shards with the local engine (worker processes) or Ray Data (``engine="ray"``), writing filtered
shards and yielding one report row per sample (``schemas/scan-report.schema.json``).
:class:`SampleDecider` (imported from ``rightsmeta.datasets.ray_engine``, which needs Ray) is
the callable class for Ray Data pipelines of your own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

from ..errors import UsageError
from ..model import Purpose, parse_purpose
from .headers import HeaderStep, recorded_headers
from .sample import SampleDecision, decide_parts, decide_sample
from .shards import Row, ScanOptions, scan_shard, split_across_files
from .sources import Shard, check_out_names, expand

Engine = Literal["local", "ray"]


def scan(
    sources: Sequence[str],
    purpose: Purpose | str,
    *,
    out_dir: str | None = None,
    engine: Engine = "local",
    jobs: int = 1,
    ray_address: str | None = None,
    column: str = "image",
    accept_constraints: bool = False,
    sample_seconds: float = 0.0,
) -> Iterator[Row]:
    """Report rows of every sample of every shard the sources name (see ``sources.expand``).

    ``sample_seconds`` bounds the time one sample may take (in worker processes' main threads);
    a sample that takes longer is dropped with the reason. Raises ``UsageError`` for sources that name nothing, before anything is scanned; what is
    wrong inside a shard becomes rows with the reason instead.
    """
    import os

    if ray_address and engine != "ray":
        # Said, not ignored: the scan ran here, quietly, while its user took it to be on the cluster.
        raise UsageError(f"a Ray address ({ray_address}) is for the Ray engine: add --engine ray (engine='ray')")
    shards = expand(sources)
    # Before any shard: a webdataset sample whose rows fall in two Parquet files is dropped in both.
    split = split_across_files([s.path for s in shards if s.kind == "parquet"])
    options = ScanOptions(purpose=purpose if isinstance(purpose, Purpose) else parse_purpose(purpose),
                          accept_constraints=accept_constraints, column=column, sample_seconds=sample_seconds,
                          out_dir=os.path.abspath(out_dir) if out_dir else None, split_ids=split)
    if options.out_dir is not None:
        check_out_names(shards)
        for shard in shards:
            target = os.path.realpath(os.path.join(options.out_dir, shard.name))
            if target == os.path.realpath(shard.path):
                raise UsageError(f"--out would overwrite the input {shard.path}: choose another folder")
    if engine == "ray":
        from .ray_engine import scan_ray

        return scan_ray(shards, options, jobs=jobs, address=ray_address)
    from .local import scan_local

    return scan_local(shards, options, jobs=jobs)


__all__ = [
    "Engine", "HeaderStep", "Row", "SampleDecision", "ScanOptions", "Shard", "decide_parts", "decide_sample",
    "expand", "recorded_headers", "scan", "scan_shard",
]
