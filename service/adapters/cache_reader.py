"""Read-only search over the writer's vector copy (adapters/vector_cache.py), for a second process: `newsclust
search` beside `serve`, which holds the Milvus Lite file. It reads the copy's files and never writes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

META_COLUMNS = 3  # the copy's rows.i64 per row: id, published_ts, ingested_ts


class CacheReader:
    """Read-only search over the writer's vector copy, for a second process (`newsclust search` beside `serve`,
    which holds the Milvus Lite file): exact cosine over the complete rows, in chunks, never a write."""

    def __init__(self, folder: Path, dim: int, source: str):
        self.folder, self.dim = folder, dim
        try:
            info = json.loads((folder / "source.json").read_text())
        except (OSError, ValueError):
            info = {}
        self.usable = info.get("source") == source and info.get("dim") == dim

    def search(self, queries: np.ndarray, k: int, chunk: int = 262_144) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine similarities) of each query's k nearest cached vectors, best first. The writer may refill
        or trim the files meanwhile: a read that comes out short is tried again once."""
        try:
            return self._search(queries, k, chunk)
        except (ValueError, OSError):
            return self._search(queries, k, chunk)

    def _search(self, queries: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        vec_path, meta_path = self.folder / "vectors.f32", self.folder / "rows.i64"
        rows = min(vec_path.stat().st_size // (4 * self.dim), meta_path.stat().st_size // (8 * META_COLUMNS))
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if rows == 0:
            return np.zeros((len(q), 0), np.int64), np.zeros((len(q), 0), np.float32)
        ids = np.fromfile(meta_path, dtype=np.int64, count=rows * META_COLUMNS).reshape(rows, META_COLUMNS)[:, 0]
        vecs = np.memmap(vec_path, dtype=np.float32, mode="r", shape=(rows, self.dim))
        best_rows = np.zeros((len(q), 0), np.int64)
        best_sims = np.zeros((len(q), 0), np.float32)
        for start in range(0, rows, chunk):
            sims = q @ np.asarray(vecs[start : start + chunk]).T
            take = min(k, sims.shape[1])
            part = np.argpartition(-sims, take - 1, axis=1)[:, :take]
            best_rows = np.hstack([best_rows, part + start])
            best_sims = np.hstack([best_sims, np.take_along_axis(sims, part, axis=1)])
            if best_rows.shape[1] > k:
                keep = np.argpartition(-best_sims, k - 1, axis=1)[:, :k]
                best_rows, best_sims = np.take_along_axis(best_rows, keep, axis=1), np.take_along_axis(best_sims, keep, axis=1)
        order = np.argsort(-best_sims, axis=1, kind="stable")
        return ids[np.take_along_axis(best_rows, order, axis=1)], np.take_along_axis(best_sims, order, axis=1)


class CopyIndex(CacheReader):
    """ports.SearchIndex over the writer's copy: CacheReader's similarities as the distances every store answers
    (sqrt(2 - 2 cos), the clustering core's)."""

    def search(self, queries: np.ndarray, k: int, chunk: int = 262_144) -> tuple[np.ndarray, np.ndarray]:
        ids, sims = super().search(queries, k, chunk)
        return ids, np.sqrt(np.clip(2.0 - 2.0 * sims.astype(np.float64), 0.0, 4.0)).astype(np.float32)
