"""Fuzzing what a dataset scan reads beside the files: samples' JSON and recorded headers,
WebDataset tar shards, Parquet rows (``rightsmeta.datasets``).

A dataset comes from anyone. One sample's metadata, however shaped, drops that sample with a
reason and never ends the scan of its shard; a shard damaged anywhere keeps no sample that was
reserved (every sample here is reserved twice, in its image and in its recorded headers, so one
damage cannot remove both). The examples pinned with ``@example`` are what this found.
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fuzzing import json_values
from hypothesis import example, given, settings
from samples import image_bytes

from rightsmeta import Assertion, api
from rightsmeta.datasets import ScanOptions, Shard, decide_sample, recorded_headers, scan_shard
from rightsmeta.datasets.headers import headers_of, web_headers
from rightsmeta.model import Purpose

EXAMPLES = int(os.environ.get("RIGHTSMETA_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None)
GENAI = Purpose.GENAI_TRAINING
BOUND = 10.0  # seconds for a shard of a few samples of a few KB: far above the real cost, far below a hang
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than the json module goes: RecursionError, not ValueError
PLAIN = image_bytes("png")
RESERVED = api.tag_bytes(image_bytes("png", seed=3), Assertion.build(deny=["ai"]))

KEYS = ("url", "headers", "response_headers", "http_headers", "tdm-reservation", "X-Robots-Tag", "content-usage")
JSON = json_values(("1", "0", "noai", "train-ai=n", "train-ai=y", '{"tdm-reservation": "1"}', DEEP), KEYS)


@SETTINGS
@given(JSON)
@example({"headers": DEEP})  # found: RecursionError out of decide_sample
@example({"http_headers": [["tdm-reservation", ["1", 2]]]})
def test_any_sample_metadata_is_read_without_raising(meta: Any) -> None:
    if not isinstance(meta, dict):
        meta = {"headers": meta}
    url, pairs, errors = headers_of(meta)
    for step in (web_headers, recorded_headers):
        step(url, pairs)
    decision = decide_sample(PLAIN, meta, GENAI)
    if errors:
        assert not decision.keep


@SETTINGS
@given(JSON)
def test_garbage_beside_recorded_reservation_never_keeps(extra: Any) -> None:
    """A sample whose recorded headers reserve it stays dropped whatever else its JSON holds."""
    headers = [["tdm-reservation", "1"], ["X-Robots-Tag", "noai"]]
    if isinstance(extra, dict):
        headers += [[k, v] for k, v in extra.items()]
    meta = {"url": "https://example.org/a.png", "headers": headers}
    assert not decide_sample(PLAIN, meta, GENAI).keep


def test_deep_recorded_headers_drop_the_sample_with_a_reason() -> None:
    decision = decide_sample(PLAIN, {"headers": DEEP}, GENAI)
    assert not decision.keep
    assert "not JSON" in decision.errors[0]


def _shard(path: Path, count: int = 4) -> bytes:
    with tarfile.open(path, "w") as tar:
        for n in range(count):
            meta = json.dumps({"url": f"https://example.org/{n}.png", "headers": {"tdm-reservation": "1"}}).encode()
            for name, data in ((f"{n:04d}.png", RESERVED), (f"{n:04d}.json", meta)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def test_damaged_tar_shards_keep_nothing_reserved(tmp_path: Path) -> None:
    whole = _shard(tmp_path / "whole.tar")
    rng = random.Random(20261130)
    options = ScanOptions(GENAI)
    for n in range(EXAMPLES // 2):
        at = rng.randrange(len(whole))
        kind = n % 4
        if kind == 0:
            data = whole[:at] + bytes([whole[at] ^ (1 << rng.randrange(8))]) + whole[at + 1:]
        elif kind == 1:
            data = whole[:at]
        elif kind == 2:  # a tar header's field overwritten with digits (sizes, checksums)
            start = at - at % 512
            data = whole[:start + 124] + b"%011o\0" % rng.randrange(8**11) + whole[start + 136:]
        else:
            end = min(len(whole), at + rng.randrange(1, 600))
            data = whole[:end] + whole[at:end] + whole[end:]
        path = tmp_path / f"m{n}.tar"
        path.write_bytes(data)
        start_time = time.perf_counter()
        rows = scan_shard(Shard("tar", str(path), path.name), options)
        assert time.perf_counter() - start_time < BOUND
        kept = [row for row in rows if row["decision"] == "keep"]
        assert not kept, (n, kind, at, kept)


def test_deep_json_in_a_parquet_row_drops_that_row_only(tmp_path: Path) -> None:
    """Found: a row whose ``json`` column is nested deeper than the json module goes ended the scan
    of the whole shard in RecursionError."""
    table = pa.table({
        "key": ["a", "b", "c"],
        "image": [PLAIN, PLAIN, PLAIN],
        "json": [json.dumps({"url": "https://example.org/a.png"}), DEEP, json.dumps({"headers": {"tdm-reservation": "1"}})],
    })
    path = tmp_path / "deep.parquet"
    pq.write_table(table, path)
    rows = {row["key"]: row for row in scan_shard(Shard("parquet", str(path), path.name), ScanOptions(GENAI))}
    assert {key: row["decision"] for key, row in rows.items()} == {"a": "keep", "b": "drop", "c": "drop"}
    assert "not a JSON object" in rows["b"]["errors"][0]


def test_deep_json_in_a_ray_batch_drops_that_row_only() -> None:
    """The same, in the Ray engine's ``map_batches`` callable (called here on a pyarrow table, as
    Ray Data calls it; no Ray cluster needed)."""
    from rightsmeta.datasets.ray_engine import SampleDecider

    table = pa.table({"image": [PLAIN, PLAIN], "json": [json.dumps({"url": "https://example.org/a.png"}), DEEP]})
    out = SampleDecider(GENAI)(table)
    assert out.column("rightsmeta_keep").to_pylist() == [True, False]
