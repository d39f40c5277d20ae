"""A Milvus Lite file whose index file a kill tore opens again, with every row; a torn data file is never touched.

Milvus Lite writes its index files in place (np.save) after the manifest names their data: a SIGKILL mid-write
left one cut short, and every later open failed on it (a fresh-clone CI run of the robustness test's ten kills).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from service.adapters.lite_repair import drop_torn_index_files, unreadable_because
from service.adapters.milvus import MilvusStore
from service.faults import StoreUnavailable


def unit(rng, n, dim=16):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def written_store(tmp_path):
    """A Lite file with 400 rows, let go (its server stopped, so a reopen reads the files again):
    (uri, ids, vectors, the answers of count, vectors_of and search)."""
    uri = str(tmp_path / "milvus.db")
    rng = np.random.default_rng(7)
    x = unit(rng, 400)
    ids = np.arange(400, dtype=np.int64) * 3 + 1
    store = MilvusStore(uri, "docs", 16)
    store.upsert(ids, x, np.arange(400, dtype=np.int64), np.zeros(400, np.int64))
    answers = store.count(), store.vectors_of(ids[::7]), store.search(x[:6], 5)
    store.release()
    return uri, ids, x, answers


def only_file(root: str, pattern: str) -> Path:
    found = sorted(Path(root).glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_an_index_file_cut_short_by_a_kill_is_dropped_and_built_again(written_store, caplog):
    uri, ids, x, (count, vectors, (nb_ids, nb_dist)) = written_store
    index = only_file(uri, "**/indexes/*.idx")
    whole = index.read_bytes()
    os.truncate(index, 128 + (len(whole) - 128) // 2)  # the .npy header written, half the vectors: a kill mid np.save
    data_before = {p: p.read_bytes() for p in Path(uri).glob("**/*.parquet")}

    with caplog.at_level(logging.WARNING, logger="newsclust"):
        store = MilvusStore(uri, "docs", 16)
    try:
        assert store.count() == count
        assert np.array_equal(store.vectors_of(ids[::7]), vectors)
        again_ids, again_dist = store.search(x[:6], 5)
        assert np.array_equal(again_ids, nb_ids) and np.allclose(again_dist, nb_dist, atol=1e-6)
    finally:
        store.release()
    warnings = [r.getMessage() for r in caplog.records if r.name == "newsclust" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and index.name in warnings[0] and "cannot be read back" in warnings[0], warnings
    assert index.read_bytes() == whole  # Lite built it again from its data, the same file
    assert {p: p.read_bytes() for p in Path(uri).glob("**/*.parquet")} == data_before


def test_a_missing_index_file_is_built_again_by_lite_itself(written_store):
    uri, ids, _, (count, vectors, _) = written_store
    index = only_file(uri, "**/indexes/*.idx")
    whole = index.read_bytes()
    index.unlink()
    store = MilvusStore(uri, "docs", 16)
    try:
        assert store.count() == count and np.array_equal(store.vectors_of(ids[::7]), vectors)
    finally:
        store.release()
    assert index.read_bytes() == whole


def test_a_torn_data_file_fails_loudly_and_nothing_is_deleted(written_store):
    """Real data loss is not repaired: Lite fails on the Parquet file (named in the error) at every open, and
    every file stays where it was for someone to look at."""
    uri = written_store[0]
    data = only_file(uri, "**/data/*.parquet")
    os.truncate(data, data.stat().st_size // 2)
    files_before = sorted(p for p in Path(uri).rglob("*") if p.is_file())
    with pytest.raises(StoreUnavailable, match=data.name):
        MilvusStore(uri, "docs", 16)
    assert sorted(p for p in Path(uri).rglob("*") if p.is_file()) == files_before


def test_every_cut_of_an_index_file_reads_as_torn_and_the_whole_file_does_not(tmp_path):
    """Each format Lite saves an index in (numpy for FLAT, faiss for HNSW/IVF and AUTOINDEX, an Arrow IPC file
    for a scalar index), cut at every kind of place: in the magic, the header, the data, one byte short."""
    import faiss
    import pyarrow as pa

    rng = np.random.default_rng(3)
    vectors = unit(rng, 300)
    folder = tmp_path / "indexes"
    folder.mkdir()
    npy = folder / "data_000001_000300.vector.flat.idx"
    with open(npy, "wb") as f:
        np.save(f, vectors, allow_pickle=False)
    hnsw = folder / "data_000001_000300.vector.hnsw.idx"
    graph = faiss.IndexHNSWFlat(16, 8)
    graph.add(vectors)
    faiss.write_index(graph, str(hnsw))
    sidx = folder / "data_000001_000300.published_ts.inverted.sidx"
    table = pa.table({"value": pa.array(np.arange(300)), "row_id": pa.array(np.arange(300))})
    with pa.OSFile(str(sidx), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)

    for path in (npy, hnsw, sidx):
        whole = path.read_bytes()
        assert unreadable_because(path) is None, path
        for cut in sorted({0, 3, 7, 40, 130, len(whole) // 2, len(whole) - 1}):
            path.write_bytes(whole[:cut])
            assert unreadable_because(path) is not None, (path.name, cut)
        path.write_bytes(whole)

    other = folder / "notes.txt"
    other.write_text("not an index")
    data = tmp_path / "data_000001_000300.parquet"
    data.write_bytes(b"PAR1 torn")
    os.truncate(hnsw, 100)
    assert [path for path, _ in drop_torn_index_files(tmp_path)] == [hnsw]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(
        [npy.name, sidx.name, other.name, data.name])


def test_a_write_ahead_log_cut_short_by_a_kill_keeps_every_whole_batch(tmp_path):
    """Not ours to repair, pinned because the store relies on it: Milvus Lite appends each upsert request to its
    WAL as one batch and answers after it is written, so a kill tears at most the batch not yet acknowledged; at
    the next open Lite replays the whole batches before the tear (it logs where it stopped) and drops the rest.
    The store as a kill leaves it is a copy of its folder taken while the writer still runs (nothing flushed)."""
    import shutil

    uri = str(tmp_path / "milvus.db")
    rng = np.random.default_rng(5)
    x = unit(rng, 300)
    z = np.zeros(100, np.int64)
    store = MilvusStore(uri, "docs", 16)
    sizes = []
    try:
        for b in range(3):
            store.upsert(np.arange(b * 100, b * 100 + 100, dtype=np.int64), x[b * 100 : b * 100 + 100], z, z)
            sizes.append(only_file(uri, "**/wal/wal_data_*").stat().st_size)
        killed = str(tmp_path / "killed.db")
        shutil.copytree(uri, killed)
    finally:
        store.release()
    assert not list(Path(killed).glob("**/*.parquet"))  # everything is in the WAL only
    os.truncate(only_file(killed, "**/wal/wal_data_*"), (sizes[1] + sizes[2]) // 2)  # a kill in the third batch

    reopened = MilvusStore(killed, "docs", 16)
    try:
        assert reopened.count() == 200
        assert np.array_equal(reopened.vectors_of(np.arange(200)), x[:200])
    finally:
        reopened.release()
