"""Milvus Lite's index files torn by a kill: found and dropped, so Lite builds them again from its data.

What milvus-lite 3.2.2 writes, and what a SIGKILL mid-write leaves (read from its source):
- Parquet data and delta files are written first and only then named in manifest.json, which is replaced
  atomically (tmp + fsync + rename; manifest.json.prev is its fallback). A file torn by a kill is named by no
  manifest, and Lite's recovery deletes it as an orphan at the next open; its rows are still in the WAL.
- The WAL (Arrow IPC streams) is appended batch by batch; recovery keeps the prefix of whole, validated batches
  and logs where it stopped: a torn tail is the unacknowledged batch.
- schema.json, aliases and snapshot metadata: tmp + rename.
- Index sidecars (partitions/<p>/indexes/<data stem>.<field>.<type>.idx, scalar ones .sidx) are written IN
  PLACE (np.save, faiss.write_index, an Arrow IPC file), after the manifest names their data file. Lite finds
  one by its name alone (Segment.build_or_load_index: load it if the path exists, else build it from the
  segment's vectors and save it), so a torn one fails every load ("Failed to read all data for array ... file
  seems not fully written?") and the store never opens again. They hold nothing the Parquet files do not:
  dropping one makes the next load build it again.
Sparse indexes are built in memory at search and never saved, so they cannot tear.
Seen: 25 SIGKILLs at random of a writer that closes and reopens Lite after each 2,000-row batch (384-d, as a
rebuild does) tore one index file, the same error as a CI run's; the next open dropped it and lost no row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
NUMPY_INDEX_TYPES = {"flat", "brute_force"}  # index/factory.py: BruteForceIndex, an np.save of the vectors
FAISS_INDEX_TYPES = {"hnsw", "hnsw_sq", "ivf_flat", "ivf_sq8", "ivf_pq"}  # faiss.write_index


def drop_torn_index_files(folder: str | Path) -> list[tuple[Path, str]]:
    """Delete the index sidecars under `folder` (a Lite collection's, or a whole store) that cannot be read back,
    and say which and why: [(path, the reader's error)]. Only files in an `indexes/` folder with a sidecar name
    are looked at; Parquet data, delta files, the WAL and the manifest are never touched. Reads each index in full
    (faiss) or its header and length (numpy, Arrow): meant for after a load failed, not for every open."""
    dropped = []
    for path in sorted(Path(folder).glob("**/indexes/*")):
        why = unreadable_because(path)
        if why is not None:
            path.unlink()
            dropped.append((path, why))
    return dropped


def unreadable_because(path: Path) -> str | None:
    """Why the index sidecar at `path` cannot be loaded (its reader's error, one line), or None when it reads
    back whole or is not an index sidecar this module knows (left alone)."""
    kind = sidecar_kind(path.name)
    if kind is None or not path.is_file():
        return None
    try:
        if kind == "sidx":
            _read_arrow_file(path)
        elif kind == "npy" or (kind == "auto" and _starts_with(path, NPY_MAGIC)):
            _read_npy(path)
        elif kind in ("faiss", "auto") and not _read_faiss(path):
            return None  # no faiss here: Lite cannot read it either, and says so itself
        return None
    except (ValueError, EOFError, RuntimeError) as exc:  # pyarrow's ArrowInvalid is a ValueError; faiss raises RuntimeError
        return (f"{type(exc).__name__}: {exc}".splitlines() or [""])[0] + f" ({path.stat().st_size} bytes)"


def sidecar_kind(name: str) -> str | None:
    """The format of an index sidecar by its name (milvus_lite/index/files.py: <stem>.<field>.<type>.idx|.sidx):
    'sidx' (Arrow IPC file), 'npy', 'faiss', 'auto' (AUTOINDEX: faiss where faiss is installed, else npy), or None."""
    if name.endswith(".sidx"):
        return "sidx"
    if not name.endswith(".idx") or name.count(".") < 3:
        return None
    index_type = name[: -len(".idx")].rsplit(".", 1)[1]
    if index_type in NUMPY_INDEX_TYPES:
        return "npy"
    if index_type in FAISS_INDEX_TYPES:
        return "faiss"
    if index_type == "autoindex":
        return "auto"
    return None


def _starts_with(path: Path, magic: bytes) -> bool:
    with open(path, "rb") as f:
        return f.read(len(magic)) == magic


def _read_npy(path: Path) -> None:
    """Header and length only: a memory map of the whole array fails when the file is shorter than its header says."""
    vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    if vectors.ndim != 2:
        raise ValueError(f"an index of shape {vectors.shape}, not (rows, dim)")
    del vectors


def _read_arrow_file(path: Path) -> None:
    import pyarrow as pa
    from pyarrow import ipc

    with pa.memory_map(str(path), "r") as source:
        ipc.open_file(source).read_all()


def _read_faiss(path: Path) -> bool:
    try:
        import faiss
    except ImportError:
        return False
    faiss.read_index(str(path))
    return True
