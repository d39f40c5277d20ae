"""The edges the use cases talk to; adapters implement them, bootstrap wires them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from .domain import Neighbours


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


class VectorStore(Protocol):
    def upsert(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray) -> None: ...

    def count(self) -> int: ...

    def all_vectors(self, since_ts: int | None = None, by: str = "published") -> tuple[np.ndarray, np.ndarray]:
        """(ids sorted, vectors) of the whole collection, or of documents since since_ts (unix seconds)."""

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """Vectors of the given ids, in their order."""

    def iter_rows(self, batch_size: int = 5000, since_ts: int | None = None, by: str = "published") -> Iterator[tuple[np.ndarray, ...]]:
        """(ids, vectors, published_ts, ingested_ts) in batches: the whole collection, for refilling a cache."""

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine distances) of each query's k nearest stored vectors; missing slots are id -1, distance inf."""

    def close(self) -> None: ...


class NeighbourIndex(Protocol):
    """Each document's kNN list kept up to date as vectors arrive, so a rebuild reads a finished graph instead of
    searching, and arrivals are placed from a live index instead of a vector-store search. It fronts the
    vector store: writes go through it to the store."""

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray) -> None:
        """Add vectors (or correct known ones): written to the vector store, then to the index and the graph."""

    def neighbour_graph(self, since_ts: int | None = None, by: str = "published") -> tuple[np.ndarray, np.ndarray, Neighbours]:
        """(ids sorted, vectors, their kNN lists re-indexed to that order) of the window since since_ts."""

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As VectorStore.search, from the live index where this process keeps one."""
