"""The Ray engine on a local Ray instance (2 CPUs) started once for this module: the same rows as
the local engine, the same filtered shards, and SampleDecider inside a Ray Data pipeline of one's own."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_datasets import SAMPLES, TDM_HEADER, _tar, expected, hf_table, write_wds

from rightsmeta.datasets import scan
from rightsmeta.datasets.ray_engine import _private_token

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

GENAI = "genai-training"

pytestmark = [
    # Ray's own start-up and data modules warn about their internals (deprecations, resources).
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                               "ignore::pytest.PytestUnraisableExceptionWarning", "ignore::FutureWarning",
                               "ignore::UserWarning"),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    _private_token()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in [str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")] if p)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-corpus")
    write_wds(root / "shard-000000.tar", SAMPLES[:10])
    write_wds(root / "shard-000001.tar.gz", SAMPLES[10:20])
    pq.write_table(hf_table(SAMPLES[20:]), root / "train.parquet")
    raw = (root / "shard-000000.tar").read_bytes()
    (root / "shard-000002.tar").write_bytes(raw[: raw.index(SAMPLES[5]["data"][:64]) + 50])  # truncated
    _tar(root / "shard-000003.tar", [("x.jpg", b"\xff\xd8\xff\xe0 not really")])  # corrupt member
    image = SAMPLES[0]["data"]
    _tar(root / "shard-000004.tar", [("a.jpg", image), ("b.jpg", image), ("a.json", b"{}")])  # a's members apart
    pq.write_table(pa.table({"text": ["no image here"]}), root / "text.parquet")  # no such column
    return root


def _key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


@pytest.mark.filterwarnings("ignore")
def test_ray_rows_and_shards_equal_the_local_engine(local_ray: None, corpus: Path, tmp_path: Path) -> None:
    sources = [str(corpus / "shard-{000000..000004}.tar*"), str(corpus / "train.parquet"), str(corpus / "text.parquet")]
    local = list(scan(sources, GENAI, out_dir=str(tmp_path / "local"), jobs=1))
    on_ray = list(scan(sources, GENAI, out_dir=str(tmp_path / "ray"), engine="ray", jobs=2))
    assert sorted(map(_key, on_ray)) == sorted(map(_key, local))
    assert len(local) > len(SAMPLES)  # the truncated copy and the hostile shards add rows
    by_key = {(os.path.basename(r["shard"]), r["key"]): (r["decision"], r["permission"]) for r in on_ray}
    for s in SAMPLES[:10]:
        assert by_key[("shard-000000.tar", s["key"])] == s["expect"]
    assert any(r["key"] is None and "no column 'image'" in r["errors"][0] for r in on_ray)
    assert any(r["key"] is None and "malformed shard" in r["errors"][0] for r in on_ray)
    names = sorted(os.listdir(tmp_path / "local"))
    # the truncated and the malformed shards are not published; the one with a corrupt member is
    assert "shard-000003.tar" in names and not {"shard-000002.tar", "shard-000004.tar"} & set(names)
    assert names == sorted(os.listdir(tmp_path / "ray"))
    for name in names:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes() or name.endswith(".gz") or name.endswith(".parquet")
    # gzip and Parquet writers stamp times or build ids; their contents must still agree
    assert pq.read_table(tmp_path / "ray" / "train.parquet").equals(pq.read_table(tmp_path / "local" / "train.parquet"))


@pytest.mark.filterwarnings("ignore")
def test_sample_decider_in_a_ray_data_pipeline(local_ray: None, tmp_path: Path) -> None:
    from rightsmeta.datasets.ray_engine import SampleDecider

    pq.write_table(hf_table(SAMPLES), tmp_path / "train.parquet", row_group_size=8)
    ds = ray.data.read_parquet(str(tmp_path / "train.parquet"))
    ds = ds.map_batches(SampleDecider, fn_constructor_kwargs={"purpose": GENAI, "column": "image.bytes"},
                        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)  # one CPU left for the reader
    ds = ds.materialize()  # decided once; read twice below
    rows = ds.take_all()
    assert {r["key"]: (("keep" if r["rightsmeta_keep"] else "drop"), r["rightsmeta_permission"]) for r in rows} == expected(SAMPLES)
    ds.filter(lambda row: row["rightsmeta_keep"]).drop_columns(
        ["rightsmeta_keep", "rightsmeta_permission", "rightsmeta_reasons", "rightsmeta_sources"]).write_parquet(str(tmp_path / "kept"))
    kept = pq.read_table(str(tmp_path / "kept"))
    assert sorted(kept.column("key").to_pylist()) == sorted(k for k, (d, _) in expected(SAMPLES).items() if d == "keep")


@pytest.mark.filterwarnings("ignore")
def test_sample_decider_over_read_webdataset_rows(local_ray: None, tmp_path: Path) -> None:
    from rightsmeta.datasets.ray_engine import SampleDecider

    write_wds(tmp_path / "shard-000000.tar", SAMPLES)
    ds = ray.data.read_webdataset(str(tmp_path / "shard-000000.tar"), decoder=None)  # members as raw bytes
    ds = ds.map_batches(SampleDecider, fn_constructor_kwargs={"purpose": GENAI, "column": "jpg,png,webp,tif,gif,wav"},
                        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)
    rows = ds.take_all()
    assert {r["__key__"]: (("keep" if r["rightsmeta_keep"] else "drop"), r["rightsmeta_permission"]) for r in rows} == expected(SAMPLES)
    assert next(r for r in rows if r["__key__"] == "000016")["rightsmeta_sources"] == [TDM_HEADER]  # the recorded header


@pytest.mark.filterwarnings("ignore")
def test_sample_decider_over_a_shard_whose_members_are_apart(local_ray: None, tmp_path: Path) -> None:
    # a.jpg, b.jpg, a.json: a reader that makes a row of each run of members, as webdataset does,
    # gives a's image a row without its JSON.
    from rightsmeta.datasets.ray_engine import SampleDecider

    image = SAMPLES[0]["data"]
    _tar(tmp_path / "apart.tar", [("a.jpg", image), ("b.jpg", image), ("a.json", json.dumps({"headers": {"tdm-reservation": "1"}}).encode())])
    ds = ray.data.read_webdataset(str(tmp_path / "apart.tar"), decoder=None)
    ds = ds.map_batches(SampleDecider, fn_constructor_kwargs={"purpose": GENAI, "column": "jpg"}, batch_size=None,
                        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)
    try:
        rows = ds.take_all()
    except Exception as exc:  # this Ray's reader refuses such a shard itself: nothing is kept
        assert "not contiguous" in str(exc)
        return
    # an older reader makes rows of each run, as webdataset: a's rows are dropped
    assert [(r["__key__"], r["rightsmeta_keep"]) for r in rows] == [("a", False), ("b", True), ("a", False)]


@pytest.mark.filterwarnings("ignore")
def test_find_split_ids_drops_a_sample_split_across_files(local_ray: None, tmp_path: Path) -> None:
    # One shard's rows in two Parquet files (Hugging Face splits a converted shard by size): a's
    # image in the first, the JSON that reserves it in the second. Each file is read by its own
    # task, so only a pass over the whole dataset sees both.
    from rightsmeta.datasets.ray_engine import SampleDecider, find_split_ids

    image = SAMPLES[0]["data"]
    reserving = json.dumps({"headers": {"tdm-reservation": "1"}})
    schema = pa.schema([("__key__", pa.string()), ("__url__", pa.string()), ("jpg", pa.binary()), ("json", pa.string())])
    pq.write_table(pa.table({"__key__": ["a", "b"], "__url__": ["s.tar"] * 2, "jpg": [image, image], "json": [None, None]},
                            schema=schema), tmp_path / "train-00000.parquet")
    pq.write_table(pa.table({"__key__": ["a", "c"], "__url__": ["s.tar"] * 2, "jpg": [None, image], "json": [reserving, None]},
                            schema=schema), tmp_path / "train-00001.parquet")
    ds = ray.data.read_parquet(str(tmp_path))
    split = find_split_ids(ds)
    assert split == {("s.tar", "a")}
    ds = ds.map_batches(SampleDecider, fn_constructor_kwargs={"purpose": GENAI, "column": "jpg", "split_ids": split},
                        batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1), num_cpus=1)
    rows = ds.take_all()
    assert sorted((r["__key__"], r["rightsmeta_keep"]) for r in rows) == [("a", False), ("a", False), ("b", True), ("c", True)]
    assert find_split_ids(ray.data.from_items([{"key": "a"}, {"key": "a"}])) == set()  # no webdataset ids: none split


def test_a_shard_deciders_rows_come_back_a_block_at_a_time(tmp_path: Path) -> None:
    """The Ray engine's actor gave a shard's rows back as one table: the actor (and the driver)
    held every row of the shard at once. Called here as Ray Data calls it, without Ray."""
    import tracemalloc

    from rightsmeta.datasets import ScanOptions
    from rightsmeta.datasets.ray_engine import ShardDecider
    from rightsmeta.model import Purpose

    image = SAMPLES[1]["data"]

    def peak(n: int) -> tuple[int, list[Any]]:
        _tar(tmp_path / f"{n}.tar", [(f"{i:05d}.png", image) for i in range(n)])
        decider = ShardDecider(ScanOptions(Purpose.GENAI_TRAINING), block_rows=100)
        tracemalloc.start()
        sizes = list(decider({"kind": ["tar"], "path": [str(tmp_path / f"{n}.tar")], "name": [f"{n}.tar"]}))
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size, sizes

    (small, _), (large, blocks) = peak(50), peak(1500)
    # A row held costs about 1 kB; what does grow is the reader's set of the keys already closed
    # (one short string a sample, for its malformed-shard check).
    assert (large - small) / 1450 < 250, (small, large)
    assert sum(len(b) for b in blocks) == 1500 and max(map(len, blocks)) <= 100
