"""The sample store (boundary.store): keys, atomic shards, missing indices, dedup, compaction."""
import os

import pytest

from boundary.config import Sampling
from boundary.store import Sample, Store, StoreKey, make_key

BASE = Sampling(temperature=0.6, top_p=0.95, max_new_tokens=128, seed=0, stop=[])


def row(pid: str, i: int, text: str = "x", reason: str = "stop") -> Sample:
    return Sample(pid, i, text, reason, 5, 3, "abcd", "transformers", "5.19.0")


def key(**changes) -> StoreKey:
    return make_key("org/model", "{question}", "transformers", BASE.model_copy(update=changes))


@pytest.mark.parametrize("change", [
    {"temperature": 0.7},  # temperature
    {"top_p": 0.9},  # nucleus
    {"max_new_tokens": 129},  # length limit
    {"seed": 1},  # seed
    {"stop": ["\n\n"]},  # a stop string
])
def test_key_changes_with_every_sampling_parameter(change):
    assert key(**change).digest() != key().digest()


@pytest.mark.parametrize("change", [
    {"batch_size": 7},  # throughput only
    {"tensor_parallel_size": 4},  # placement only
    {"kv_cache_bytes": 256 << 20},  # vLLM's memory only
])
def test_key_ignores_throughput_settings(change):
    assert key(**change).digest() == key().digest()


def test_every_sampling_field_is_keyed_or_declared_unkeyed():
    keyed = {name for name, _ in key().sampling}
    assert keyed | {"batch_size", "tensor_parallel_size", "kv_cache_bytes", "backend"} == set(Sampling.model_fields)


@pytest.mark.parametrize("other", [
    make_key("org/model", "{question}", "vllm", BASE),  # another backend
    make_key("org/model", "Q: {question}", "transformers", BASE),  # another template
    make_key("org/model", "{question}", "transformers", BASE, revision="abc123"),  # another revision
    make_key("org/other", "{question}", "transformers", BASE),  # another model
])
def test_key_changes_with_model_template_backend(other):
    assert other.digest() != key().digest()


def test_local_folder_key_follows_its_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights-1")
    a = make_key(tmp_path, "t", "transformers", BASE)
    assert a.model_version.startswith("sha256:")
    assert make_key(tmp_path, "t", "transformers", BASE) == a
    (tmp_path / "model.safetensors").write_bytes(b"weights-2")
    assert make_key(tmp_path, "t", "transformers", BASE).digest() != a.digest()


def test_append_read_missing(tmp_path):
    s = Store(tmp_path, key())
    assert s.missing(["a", "b"], 3) == {"a": [0, 1, 2], "b": [0, 1, 2]}
    s.append([row("a", 0), row("a", 2), row("b", 1, reason="length")])
    assert s.missing(["a", "b"], 3) == {"a": [1], "b": [0, 2]}
    assert s.missing(["a", "b"], 5) == {"a": [1, 3, 4], "b": [0, 2, 3, 4]}  # top-up: only the new indices
    df = s.read()
    assert list(zip(df.problem_id, df["sample"], df.finish_reason)) == [("a", 0, "stop"), ("a", 2, "stop"), ("b", 1, "length")]


def test_reads_ignore_a_leftover_temporary_shard(tmp_path):
    s = Store(tmp_path, key())
    s.append([row("a", 0)])
    (s.dir / ".tmp-shard-99999999999999999999-1-deadbeef.parquet").write_bytes(b"PAR1 half written")
    assert len(s.read()) == 1 and s.missing(["a"], 2) == {"a": [1]}


def test_stale_temporary_files_are_removed_on_open(tmp_path):
    s = Store(tmp_path, key())
    old, new = s.dir / ".tmp-shard-old.parquet", s.dir / ".tmp-shard-new.parquet"
    old.write_bytes(b"x"), new.write_bytes(b"y")
    os.utime(old, (0, 0))
    Store(tmp_path, key())
    assert not old.exists() and new.exists()  # a live writer's recent temp file is left alone


def test_duplicates_are_dropped_deterministically(tmp_path):
    s = Store(tmp_path, key())
    s.append([row("a", 0, "first"), row("a", 1)])
    s.append([row("a", 0, "second")])  # a concurrent run wrote the same index
    df = s.read()
    assert len(df) == 2 and df.text.tolist() == ["first", "x"]


def test_compact_merges_and_deduplicates(tmp_path):
    s = Store(tmp_path, key())
    for i in range(5):
        s.append([row("a", i), row("b", i)])
    s.append([row("a", 0)])
    before = s.read()
    s.compact()
    assert len(s.shards()) == 1
    assert s.read().equals(before) and len(before) == 10


def test_bad_finish_reason_is_refused_and_nothing_written(tmp_path):
    s = Store(tmp_path, key())
    with pytest.raises(ValueError, match="finish_reason 'abort'"):
        s.append([row("a", 0), row("a", 1, reason="abort")])
    assert s.shards() == [] and not list(s.dir.glob(".tmp-*"))


def test_stores_of_different_keys_are_separate(tmp_path):
    Store(tmp_path, key()).append([row("a", 0)])
    assert Store(tmp_path, key(temperature=1.0)).missing(["a"], 1) == {"a": [0]}
    assert (Store(tmp_path, key()).dir / "key.json").exists()


def test_token_ids_round_trip_and_must_match_the_count(tmp_path):
    s = Store(tmp_path, key())
    s.append([Sample("a", 0, "xy", "stop", 5, 3, "abcd", "vllm", "0.32", (7, 8, 2)), row("a", 1)])
    df = s.read()
    assert df.token_ids[0].tolist() == [7, 8, 2] and df.token_ids[1] is None  # None: not recorded
    with pytest.raises(ValueError, match="a#2: 2 token ids for 3 completion tokens"):
        s.append([Sample("a", 2, "x", "stop", 5, 3, "abcd", "vllm", "0.32", (7, 8))])
    assert len(s.shards()) == 1


def test_a_shard_written_before_token_ids_still_reads(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from boundary.store import SCHEMA

    s = Store(tmp_path, key())
    old = pa.schema([f for f in SCHEMA if f.name != "token_ids"])  # the schema of older stores
    pq.write_table(pa.Table.from_pylist([{k: v for k, v in row("a", 0).__dict__.items() if k != "token_ids"}],
                                        schema=old), s.dir / "shard-00000000000000000001-1-old.parquet")
    s.append([Sample("a", 1, "xy", "stop", 5, 2, "abcd", "vllm", "0.32", (7, 2))])
    df = s.read()
    assert df.token_ids[0] is None and df.token_ids[1].tolist() == [7, 2]
    assert s.read(["problem_id", "token_ids"]).token_ids.isna().tolist() == [True, False]
    s.compact()  # the merged shard holds the new schema, the old row's ids null
    assert s.read().token_ids.isna().tolist() == [True, False]
