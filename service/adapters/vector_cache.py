"""The writer's local working set beside Milvus: a copy of the vectors and a kNN graph kept up to date.

Why a copy: Milvus returns vectors through its query iterator as Python lists of floats. At
100k documents that read took 28 s of a 49 s rebuild. The writer appends every new vector
it upserts into Milvus to flat files here and a rebuild maps them in one read.

Why a graph kept as documents arrive: building the kNN graph from scratch is the rebuild's
biggest cost (15-27 s at 100k with an IVF index, minutes at 1M), while each arrival's
neighbour search is needed for placing it anyway. So every new batch is searched in a live
faiss index over all cached vectors: the batch's own lists are written, and every older document
the index compares it with is offered it where it comes nearer than that one's k-th (graph.join_new_rows,
merge_neighbours); past the exact range, the neighbours of its neighbours are compared with it too
(graph.refine_new_rows), and a few older rows in turn take the same pass (graph.revisit_rows). A rebuild then reads
a finished graph. Milvus (a server or Lite) is written in a background thread while a batch is joined; the copy's
files are written only once Milvus holds the rows, so a crash leaves the copy behind Milvus (caught up), never ahead
of it.
The live index (adapters/live_index.py: kept in memory, saved beside the copy) also answers `search`
for placing arrivals, ~30x faster than Milvus Lite. Another process reads the copy through
adapters/cache_reader.py.

Milvus stays the source of truth. The copy is trusted only when it was filled from the same
Milvus URI and collection and holds exactly as many distinct ids as Milvus does. When Milvus holds
more (other processes wrote it: the ingest workers of a shared home, whose rebuild leader keeps this
copy), the copy catches up: it reads only the rows stamped since its newest row (less an overlap for
clocks), appends the ones it lacks and extends its graph exactly as the writer's own upserts do. Only
when that still leaves the counts apart, or the copy is missing or foreign, is it refilled from Milvus
and the graph recomputed. Opening a copy repairs it (a torn last row from a crash mid-append cut
off, a graph of another knn_k dropped); reads only read; a graph shorter than the vectors is recomputed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..clustering.graph import (EXACT_SEARCH_MAX_N, add_rows, build_index, complete_lists, is_exact, join_new_rows, knn, merge_neighbours,
                                nearest_others, probe_lists, probed_blocks, refine_new_rows, revisit_rows, search_index, subgraph)
from ..domain import Neighbours
from ..files import atomic_write
from ..ports import VectorStore
from ..sorted_keys import find_rows, find_sorted
from .cache_reader import META_COLUMNS
from .live_index import LiveIndex

log = logging.getLogger("newsclust.vector_cache")

# A corrected vector (a known id with new text) is searched this many times k deep and offered to what it finds.
# New rows do not search: join_new_rows compares them with every row the index would compare them with.
REVERSE_DEPTH = 16
# Past the exact range, each new batch also takes one neighbours-of-neighbours pass (graph.refine_new_rows): recall
# 0.955 -> 0.961 at 100k and 0.929 -> 0.939 at 200k (bench/graph_replay.py), for 4-7% of the insert's CPU.
REFINE_NEW_ROWS = True
# ...and older rows take the same pass in turn (graph.revisit_rows): each batch looks at REVISIT_PER_NEW older rows a
# new row, from where the last batch stopped, and revisits the sparser half of them (those a new row far off may have
# come nearer than their k-th). Sparse rows are where the kept graph misses: 0.80 of their true neighbours at 200k.
# bench/graph_replay.py at 200k: recall 0.939 -> 0.949 for +11% of the insert's CPU (4: 0.954 for +29%).
REVISIT_PER_NEW = 2
# Where a process's first revisit starts, as a share of the older rows: each open starts elsewhere (a one-shot ingest
# per file would otherwise revisit the first rows every time), the same for the same copy.
REVISIT_START = 0.6180339887
# A catch-up reads the rows stamped (ingested_ts, each worker's clock at its upsert) since the copy's newest
# row less this: workers' clocks a little apart (NTP keeps them within milliseconds), a batch stamped before a slower
# one landed (one Milvus upsert, a second or two). A row older
# than that leaves the counts apart and the copy is refilled: correct, only slower.
CATCH_UP_OVERLAP_S = 30


class CachedVectorStore:
    def __init__(self, store: VectorStore, folder: Path, dim: int, source: str, knn_k: int = 15):
        self.store = store
        self.dim = dim
        self.k = knn_k
        self.folder = folder
        self.source = source
        folder.mkdir(parents=True, exist_ok=True)
        self._vec_path = folder / "vectors.f32"
        self._meta_path = folder / "rows.i64"
        self._gidx_path = folder / "graph-idx.i64"
        self._gdist_path = folder / "graph-dist.f32"
        self._info_path = folder / "source.json"
        self._known: set[int] | None = None
        self._revisit_from: int | None = None  # where the next batch's revisit of older rows starts (graph.revisit_rows)
        self._store_refused = False  # the last write to the store failed: the next one is waited for before any join
        self._ids: np.ndarray | None = None
        self._live = LiveIndex(folder, dim, lambda x, centres: build_index(x, knn_k, centres=centres), EXACT_SEARCH_MAX_N)  # faiss over cache rows 0..ntotal-1
        info = self._source_info()
        self._trusted = info.get("source") == source and info.get("dim") == dim
        # how the last check against the store went: "current", "catch_up" or "refill", and the rows read for it (a
        # catch-up's "waited": it read again, waiting for the store's newest writes, as the reads that did not wait fell short)
        self.last_sync: dict[str, object] = {"kind": "current", "rows_read": 0, "rows_added": 0}
        if self._trusted:  # opening a copy repairs it: a torn last row cut, a graph of another knn_k dropped
            if info.get("k") != self.k:  # the vectors hold; the graph is recomputed at the next rebuild
                self._drop_graph()
                self._write_info()
            self._cut_torn_rows()
        elif store.count() == 0:
            self.refill()  # a new collection: start the cache with it, nothing to copy

    @property
    def trusted(self) -> bool:
        """Whether the files hold a copy of this source's vectors; if not, the next read refills them from Milvus."""
        return self._trusted

    # --- the VectorStore port -------------------------------------------------------
    def upsert(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray) -> None:
        """The store is written in a background thread while the new rows' lists are found (join_new_rows, the
        writer's largest cost); the copy's files are written only once the store holds the rows, so the copy is never
        ahead of it. Milvus Lite too, though its engine is Python inside this process and shares the interpreter's
        lock with the join threads' loops (their products and comparisons let go of it): at 1M its 254 s of writes
        ran beside a 674 s insert (docs/scaling.md section 9). A kill that tears Lite's index file while it writes is
        mended at the next open (lite_repair)."""
        if self._store_refused:
            # an outage: each retry would pay the whole join before hearing the store fail again
            self.store.upsert(ids, vectors, published_ts, ingested_ts)
            self._store_refused = False
            self._take(ids, vectors, published_ts, ingested_ts)
            return
        stored = _InBackground(self.store.upsert, ids, vectors, published_ts, ingested_ts)
        try:
            self._take(ids, vectors, published_ts, ingested_ts, stored=stored)
        finally:
            self._store_refused = not stored.written()
            stored()  # the store's error, unless _take raised it already

    def _take(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray,
              stored: Callable[[], None] = lambda: None) -> int:
        """Rows the store holds into the copy: new ids appended (their graph lists found, older lists offered
        them), known ids with another vector overwritten. Returns how many rows were appended. stored(): waits until
        the store holds the rows (raises if it failed to), called before anything is written."""
        if not self._trusted:
            return 0
        if not self._whole():
            log.warning("vector cache %s was cut or changed under us: it is refilled from Milvus at the next rebuild", self.folder.name)
            self._distrust()
            return 0
        known = self._known_ids()
        seen_before = np.array([int(i) in known for i in ids], dtype=bool)
        fresh = _first_seen(ids, known)  # a retry's rows are there already
        rows_before = self._complete_rows()
        new = np.ascontiguousarray(vectors[fresh], dtype=np.float32)
        # only new rows are joined before the store answers: a correction rewrites rows the join would read
        grows = bool(fresh.any()) and not seen_before.any() and self._graph_rows() == rows_before
        try:
            joined = self._join(new, rows_before) if grows else None
            stored()
            if seen_before.any():
                self._overwrite(ids[seen_before], vectors[seen_before])
            if fresh.any():
                self._append(ids[fresh], new, published_ts[fresh], ingested_ts[fresh])
        except BaseException:
            self._known, self._ids = None, None  # _first_seen counted them as cached: read what the files really hold
            if grows:
                self._live.forget_rows_from(rows_before)  # the join put them in the live index
            raise
        if fresh.any() and self._graph_rows() == rows_before:
            self._extend_graph(new, rows_before, joined)
        return int(fresh.sum())

    def _whole(self) -> bool:
        """Whether the files still hold the rows this process wrote (a full disk or a hand may have cut them)."""
        rows = self._complete_rows()
        sizes_ok = (self._vec_path.stat().st_size if self._vec_path.exists() else 0) == rows * 4 * self.dim and \
            (self._meta_path.stat().st_size if self._meta_path.exists() else 0) == rows * 8 * META_COLUMNS
        return sizes_ok and (self._ids is None or len(self._ids) == rows)

    def _distrust(self) -> None:
        """The files no longer hold a copy we can append to: refilled at the next read."""
        self._trusted, self._ids, self._known = False, None, None
        self._live.drop()
        self._info_path.unlink(missing_ok=True)

    def _overwrite(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Corrections (a known id with new text): the cached vector is replaced in place and its kNN list found
        again; other documents' lists keep their old distance to it until the graph is next recomputed."""
        row_ids = self._row_ids()
        rows, found = find_rows(row_ids, ids)
        if len(row_ids) == 0 or not found.all():  # not all cached after all: refill, never guess a row
            self._distrust()
            return
        new = np.ascontiguousarray(vectors, dtype=np.float32)
        cached = np.memmap(self._vec_path, dtype=np.float32, mode="r+", shape=(len(row_ids), self.dim))
        changed = np.any(cached[rows] != new, axis=1)
        if not changed.any():
            del cached
            return
        self._live.drop()  # faiss (and its saved file) holds the old vectors: rebuilt from the cache on next use
        cached[rows[changed]] = new[changed]
        cached.flush()
        del cached
        total = len(row_ids)
        if self._graph_rows() != total:
            return
        index = self._live.over(total, self._vector_rows)
        found = search_index(index, new[changed], min(REVERSE_DEPTH * self.k + 1, total))
        self._offer(total, rows[changed], found, own=nearest_others(found, rows[changed], self.k))

    def count(self) -> int:
        return self.store.count()

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """From the live index where this process keeps one (the writer), else from Milvus."""
        index = self._live.ready(self._complete_rows())
        if index is None:
            return self.store.search(vectors, k)
        nb = search_index(index, vectors, k)
        ids = self._row_ids()
        return np.where(nb.indices >= 0, ids[np.maximum(nb.indices, 0)], -1), nb.distances

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        row_ids = self._row_ids() if self._trusted else np.zeros(0, np.int64)
        rows, found = find_rows(row_ids, ids)
        if len(row_ids) == 0 or not found.all():
            return self.store.vectors_of(ids)  # some are not cached (yet): Milvus has them all
        return np.asarray(self._load()[1][rows], dtype=np.float32)

    def close(self) -> None:
        self._live.save_if_behind(wait=False)  # the next start reads it back instead of adding what arrived since
        self._live.close()
        self.store.close()

    def all_vectors(self, since_ts: int | None = None, by: str = "published") -> tuple[np.ndarray, np.ndarray]:
        """Same answer as the store's all_vectors: distinct ids sorted, their vectors, within the window."""
        meta, vecs = self._checked_load()
        keep = _window_rows(meta, since_ts, by)
        return meta[keep, 0].copy(), _read_rows(self._vec_path, len(meta), self.dim, keep)

    def neighbour_graph(self, since_ts: int | None = None, by: str = "published",
                        checked: Callable[[], object] | None = None) -> tuple[np.ndarray, np.ndarray, Neighbours]:
        """all_vectors plus each document's k nearest others among them, from the kept graph; `checked` runs once the
        copy is checked against the store (the caller may close the store then: nothing below uses it)."""
        meta, vecs = self._checked_load()
        if checked is not None:
            checked()
        rows = len(meta)
        if self._graph_rows() != rows:
            self._recompute_graph(vecs)
        graph = Neighbours(
            np.fromfile(self._gidx_path, dtype=np.int64, count=rows * self.k).reshape(rows, self.k),
            np.fromfile(self._gdist_path, dtype=np.float32, count=rows * self.k).reshape(rows, self.k),
        )
        keep = _window_rows(meta, since_ts, by)
        if len(keep) == rows and (rows == 0 or (keep[0] == 0 and (np.diff(keep) == 1).all())):
            # no window, rows already in id order (the writer's usual case): the read-only memory map
            # itself, so a recipe that never reads the vectors (graph) never holds them (1.5 GB at 1M),
            # and the graph as stored. Only this process writes the file (home lock), and its writer
            # waits for the rebuild (write lock): the mapped rows are never truncated under it.
            return meta[:, 0].copy(), vecs, graph
        window = _read_rows(self._vec_path, rows, self.dim, keep)
        del vecs
        neigh = subgraph(graph, keep, rows)
        if len(keep) < rows:  # the window cut some lists short: those rows search again inside it
            neigh = complete_lists(neigh, window)
        return meta[keep, 0].copy(), window, neigh

    # --- the graph ----------------------------------------------------------------------
    @property
    def live_rows(self) -> int | None:
        """How many rows the live index holds now (None: not loaded or built yet); never waits."""
        return self._live.rows

    def warm_up(self) -> float:
        """Load or build the live index now (serve's start, in a background thread), not in the first file's ingest:
        11-15 s at 100k documents on 2 busy cores when built, under 1 s read back from its file; and the join's
        compiled loops (graph_kernels.touch). Seconds spent."""
        from ..clustering.graph_kernels import touch

        t0 = time.perf_counter()
        touch()
        spent = time.perf_counter() - t0
        if not self._trusted:
            return spent
        return spent + self._live.warm_up(self._complete_rows, self._vector_rows)

    def _join(self, new: np.ndarray, first_row: int):
        """The new rows added to the live index and joined with what it compares them with (join_new_rows): their
        own lists and the offers to older rows, nothing written. Returns (index, the older rows' k-th distances,
        join_new_rows's answer). The lists the new rows probe are searched once, for their adding and their join."""
        index = self._live.over(first_row, self._vector_rows)
        probes = probe_lists(index, new)
        self._live.append(first_row, new, lambda index, rows: add_rows(index, rows, probes))
        kth = np.memmap(self._gdist_path, dtype=np.float32, mode="r", shape=(first_row, self.k))[:, self.k - 1].copy() \
            if first_row else np.zeros(0, np.float32)
        return index, kth, join_new_rows(probed_blocks(index, new, self.k, probes), new, first_row, kth, self.k)

    def _extend_graph(self, new: np.ndarray, first_row: int, joined=None) -> None:
        """The new rows' own lists, and each older row offered the new ones nearer it than its k-th (joined: _join's
        answer, found while the store was written), then the neighbours-of-neighbours passes."""
        index, kth, (own, (older, newer, dist)) = joined or self._join(new, first_row)
        total = first_row + len(new)
        if REFINE_NEW_ROWS and first_row and not is_exact(index):
            vecs = np.memmap(self._vec_path, dtype=np.float32, mode="r", shape=(total, self.dim))
            lists = np.memmap(self._gidx_path, dtype=np.int64, mode="r", shape=(first_row, self.k))
            own, (o2, n2, d2) = refine_new_rows(vecs, lists, own, first_row, kth, self.k)
            del vecs, lists
            older, newer, dist = np.concatenate([older, o2]), np.concatenate([newer, n2]), np.concatenate([dist, d2])
        with self._gidx_path.open("ab") as fh:
            fh.write(own.indices.tobytes())
        with self._gdist_path.open("ab") as fh:
            fh.write(own.distances.tobytes())
        if len(older):
            self._merge(total, older, newer, dist)
        if REVISIT_PER_NEW and first_row and not is_exact(index):
            self._revisit(total, first_row, REVISIT_PER_NEW * len(new))

    def _revisit(self, total: int, older_rows: int, count: int) -> None:
        """The neighbours-of-neighbours pass for the sparser half of `count` older rows, taken in turn."""
        if self._revisit_from is None:
            self._revisit_from = int(REVISIT_START * older_rows)
        start = self._revisit_from % older_rows
        rows = (start + np.arange(min(count, older_rows), dtype=np.int64)) % older_rows
        self._revisit_from = start + len(rows)
        gidx = np.memmap(self._gidx_path, dtype=np.int64, mode="r", shape=(total, self.k))
        kth = np.memmap(self._gdist_path, dtype=np.float32, mode="r", shape=(total, self.k))[:, self.k - 1].copy()
        rows = rows[kth[rows] >= np.median(kth[rows])]
        vecs = np.memmap(self._vec_path, dtype=np.float32, mode="r", shape=(total, self.dim))
        to, cand, dist = revisit_rows(vecs, gidx, kth, rows, self.k)
        del gidx, vecs
        if len(to):
            self._merge(total, to, cand, dist)

    def _merge(self, total: int, rows: np.ndarray, candidates: np.ndarray, distances: np.ndarray) -> None:
        gidx = np.memmap(self._gidx_path, dtype=np.int64, mode="r+", shape=(total, self.k))
        gdist = np.memmap(self._gdist_path, dtype=np.float32, mode="r+", shape=(total, self.k))
        touched, idx, dist = merge_neighbours(gidx, gdist, rows, candidates, distances)
        gidx[touched], gdist[touched] = idx, dist
        gidx.flush()
        gdist.flush()
        del gidx, gdist

    def _offer(self, total: int, rows: np.ndarray, found: Neighbours, own: Neighbours) -> None:
        """Write `own` as the lists of `rows`, then offer each of them to the lists of the documents it found."""
        gidx = np.memmap(self._gidx_path, dtype=np.int64, mode="r+", shape=(total, self.k))
        gdist = np.memmap(self._gdist_path, dtype=np.float32, mode="r+", shape=(total, self.k))
        gidx[rows], gdist[rows] = own.indices, own.distances
        gidx.flush()
        gdist.flush()
        del gidx, gdist
        take = found.indices >= 0
        if take.any():
            self._merge(total, found.indices[take], np.broadcast_to(rows[:, None], take.shape)[take], found.distances[take])

    def _recompute_graph(self, vecs) -> None:
        """The whole graph from scratch: after a refill, or when a crash left it behind the vectors."""
        rows = len(vecs)
        x = np.asarray(vecs, dtype=np.float32)
        index = build_index(x, self.k) if rows else None
        if index is not None:
            self._live.install(index, rows)
        neigh = knn(x, self.k, index=index) if rows else Neighbours(np.zeros((0, self.k), np.int64), np.zeros((0, self.k), np.float32))
        idx = np.full((rows, self.k), -1, np.int64)
        dist = np.full((rows, self.k), np.inf, np.float32)
        idx[:, : neigh.k], dist[:, : neigh.k] = neigh.indices, neigh.distances
        atomic_write(self._gidx_path, idx.tobytes())
        atomic_write(self._gdist_path, dist.tobytes())

    def _graph_rows(self) -> int:
        if not (self._gidx_path.exists() and self._gdist_path.exists()):
            return -1
        return min(self._gidx_path.stat().st_size // (8 * self.k), self._gdist_path.stat().st_size // (4 * self.k))

    # --- the vectors --------------------------------------------------------------------
    def refill(self) -> None:
        """Rewrite the cache from Milvus (to temporary names, then renamed); the graph follows at the next read."""
        tmp_vec, tmp_meta = self._vec_path.with_suffix(".tmp"), self._meta_path.with_suffix(".tmp")
        known: set[int] = set()
        with tmp_vec.open("wb") as fv, tmp_meta.open("wb") as fm:
            for ids, vecs, published, ingested in self.store.iter_rows():
                fresh = _first_seen(ids, known)
                fv.write(np.ascontiguousarray(vecs[fresh], dtype=np.float32).tobytes())
                fm.write(np.column_stack([ids[fresh], published[fresh], ingested[fresh]]).astype(np.int64).tobytes())
            for fh in (fv, fm):
                fh.flush()
                os.fsync(fh.fileno())
        self._info_path.unlink(missing_ok=True)
        self._live.drop()
        self._drop_graph()
        os.replace(tmp_vec, self._vec_path)
        os.replace(tmp_meta, self._meta_path)
        self._write_info()
        self._known, self._ids, self._trusted = known, None, True
        if not known:
            self._recompute_graph(np.zeros((0, self.dim), np.float32))

    def _checked_load(self):
        meta, vecs = self._load()
        in_store = self.store.count()
        self.last_sync = {"kind": "current", "rows_read": 0, "rows_added": 0}
        if self._trusted and len(meta) and len(meta) < in_store:
            del vecs
            since = int(meta[:, 2].max()) - CATCH_UP_OVERLAP_S
            # workers may add rows while the copy reads: it must hold at least what the store counted before the read
            # (a row stamped before the overlap and hidden by newer ones is found at the next quiet check). The count
            # waited for every write before it, so the reads need not wait again (strong=False, twice the count's
            # 0.2 s on the embedded server); a server that answers them from a replica still behind the count is
            # read once more, waiting, before the copy is called lost
            read = added = 0
            for strong in (False, True):
                added += self.catch_up(since, strong=strong)
                read += self.last_sync["rows_read"]
                if not self._trusted or self._complete_rows() >= in_store:
                    break
            self.last_sync = {"kind": "catch_up", "rows_read": read, "rows_added": added, "waited": strong}
            meta, vecs = self._load()
            caught_up = self._trusted and len(meta) >= in_store
            in_store = len(meta) if caught_up else in_store
        if not self._trusted or len(meta) != in_store:
            if self.last_sync["kind"] == "catch_up":
                log.warning("vector cache %s: %d rows after catching up, the store holds %d: refilled from it",
                            self.folder.name, len(meta), in_store)
            self.refill()
            meta, vecs = self._load()
            self.last_sync = {"kind": "refill", "rows_read": len(meta), "rows_added": len(meta)}
            log.info("vector cache %s: refilled %d rows from the store", self.folder.name, len(meta))
        return meta, vecs

    def keep_up(self) -> int:
        """Between rebuilds: take in the rows the store holds beyond the copy (catch_up), never a refill (that is the
        rebuild's to decide). Returns the rows appended."""
        if not self._trusted or not 0 < self._complete_rows() < self.store.count():  # the files' length: no read while current
            return 0
        # after the count: what a read without waiting misses, the next tick's count finds again
        added = self.catch_up(int(self._meta_view()[:, 2].max()) - CATCH_UP_OVERLAP_S, strong=False)
        self.last_sync = {"kind": "current", "rows_read": 0, "rows_added": 0}
        return added

    def catch_up(self, since_ts: int, strong: bool = True) -> int:
        """Read the store's rows stamped at or after since_ts (ingested_ts) and take in the ones this copy lacks,
        as the writer's own upserts would have: the rebuild leader of a shared home, whose ingest workers write
        Milvus only. strong=False: the rows the store holds now (VectorStore.iter_rows). Returns the rows appended;
        last_sync says what was read."""
        read = added = 0
        meta = self._meta_view()
        # only the copy's rows stamped since since_ts can hold a row the store stamped then (a revised document's older
        # row does not: it is read again): the leader keeps up every second, and sorting every id of a copy of 12.5M
        # rows took 1.65 s a tick here (the filter 0.08 s), and the meta file was read whole twice
        recent = np.flatnonzero(meta[:, 2] >= since_ts)
        order = recent[np.argsort(meta[recent, 0], kind="stable")]
        copy_ids, copy_ingested = meta[order, 0], meta[order, 2]
        del meta

        def held(ids: np.ndarray, ingested: np.ndarray) -> np.ndarray:
            """Rows the copy holds as the store does (a revised document is stamped again: its new vector is read)."""
            if not len(copy_ids):
                return np.zeros(len(ids), bool)
            at, found = find_sorted(copy_ids, ids)
            return found & (copy_ingested[at] == ingested)

        for ids, vecs, published, ingested in self.store.iter_rows(since_ts=since_ts, by="ingested", without=held, strong=strong):
            read += len(ids)
            added += self._take(ids, vecs, published, ingested)
        self.last_sync = {"kind": "catch_up", "rows_read": read, "rows_added": added, "waited": strong}
        log.info("vector cache %s: caught up %d new rows (%d read from the store)", self.folder.name, added, read)
        return added

    def _known_ids(self) -> set[int]:
        if self._known is None:
            self._known = set(self._row_ids().tolist())
        return self._known

    def _row_ids(self) -> np.ndarray:
        """Document id of each cache row, kept in memory by the writer (searches map index rows through it)."""
        if self._ids is None or len(self._ids) != self._complete_rows():
            self._ids = self._load()[0][:, 0].copy()
        return self._ids

    def _append(self, ids, vectors, published_ts, ingested_ts) -> None:
        current = self._row_ids()
        # vectors first: on open, rows count only where both files hold them
        with self._vec_path.open("ab") as fh:
            fh.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
        with self._meta_path.open("ab") as fh:
            fh.write(np.column_stack([ids, published_ts, ingested_ts]).astype(np.int64).tobytes())
        self._ids = np.concatenate([current, np.asarray(ids, np.int64)])

    def _meta_view(self) -> np.ndarray:
        """The copy's complete meta rows (id, published, ingested) mapped, not read: a catch-up looks at one column."""
        rows = self._complete_rows() if self._trusted else 0
        if rows == 0:
            return np.zeros((0, META_COLUMNS), np.int64)
        return np.memmap(self._meta_path, dtype=np.int64, mode="r", shape=(rows, META_COLUMNS))

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._complete_rows() if self._trusted else 0
        if rows == 0:
            return np.zeros((0, META_COLUMNS), np.int64), np.zeros((0, self.dim), np.float32)
        meta = np.fromfile(self._meta_path, dtype=np.int64, count=rows * META_COLUMNS).reshape(rows, META_COLUMNS)
        return meta, self._vector_rows(rows)

    def _vector_rows(self, rows: int | None = None) -> np.ndarray:
        """The copy's first rows vector rows (default: every complete one), mapped (what the live index is built
        from; no meta read)."""
        if rows is None:
            rows = self._complete_rows() if self._trusted else 0
        if rows == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.memmap(self._vec_path, dtype=np.float32, mode="r", shape=(rows, self.dim))

    def _complete_rows(self) -> int:
        vec_rows = self._vec_path.stat().st_size // (4 * self.dim) if self._vec_path.exists() else 0
        meta_rows = self._meta_path.stat().st_size // (8 * META_COLUMNS) if self._meta_path.exists() else 0
        return min(vec_rows, meta_rows)

    def _cut_torn_rows(self) -> None:
        rows = self._complete_rows()
        for path, row_bytes in ((self._vec_path, 4 * self.dim), (self._meta_path, 8 * META_COLUMNS)):
            if path.exists() and path.stat().st_size != rows * row_bytes:
                os.truncate(path, rows * row_bytes)
        graph_rows = self._graph_rows()
        if graph_rows > rows:
            self._drop_graph()
        elif graph_rows >= 0:  # a torn or half-written last row: cut both to the rows they both hold
            os.truncate(self._gidx_path, graph_rows * 8 * self.k)
            os.truncate(self._gdist_path, graph_rows * 4 * self.k)

    def _source_info(self) -> dict:
        """What the copy says it was filled from ({} if it says nothing readable); reads only."""
        try:
            info = json.loads(self._info_path.read_text())
        except (OSError, ValueError):
            return {}
        return info if isinstance(info, dict) else {}

    def _write_info(self) -> None:
        self._info_path.write_text(json.dumps({"source": self.source, "dim": self.dim, "k": self.k}))

    def _drop_graph(self) -> None:
        for path in (self._gidx_path, self._gdist_path):
            path.unlink(missing_ok=True)


class _InBackground:
    """write(*args) in a thread. Calling it waits for the write and raises what the write raised (once: a caller that
    saw the error is not told again); written() waits too and says whether the write went through."""

    def __init__(self, write: Callable[..., None], *args):
        self._error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._run, args=(write, args), name="vector-store-write", daemon=True)
        self._thread.start()

    def _run(self, write: Callable[..., None], args: tuple) -> None:
        try:
            write(*args)
        except BaseException as exc:  # noqa: BLE001 — handed to the caller's wait
            self._error = exc

    def written(self) -> bool:
        self._thread.join()
        return self._error is None

    def __call__(self) -> None:
        if not self.written() and not self._raised:
            self._raised = True
            raise self._error


def _first_seen(ids: np.ndarray, seen: set[int]) -> np.ndarray:
    """Mask of the ids not in `seen` (nor earlier in `ids`); adds them to `seen`."""
    return np.array([not (int(i) in seen or seen.add(int(i))) for i in ids], dtype=bool)


def _read_rows(path: Path, n_rows: int, dim: int, keep: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """The cached vectors of rows `keep`, in that order, read through the file in chunks.

    Gathering them through the memory map touched every page of the map, and a mapped page counts
    in the process's resident memory until the map goes: at 1M documents the map's 1.5 GB stood
    beside the 1.5 GB copy at the rebuild's peak. Reads leave the pages in the page cache only."""
    out = np.empty((len(keep), dim), np.float32)
    slot = np.full(n_rows, -1, np.int64)
    slot[keep] = np.arange(len(keep))
    with path.open("rb") as fh:
        for start in range(0, n_rows, chunk):
            stop = min(n_rows, start + chunk)
            dst = slot[start:stop]
            wanted = dst >= 0
            if not wanted.any():
                fh.seek(stop * dim * 4)
                continue
            block = np.fromfile(fh, dtype=np.float32, count=(stop - start) * dim).reshape(stop - start, dim)
            out[dst[wanted]] = block[wanted]
    return out


def _window_rows(meta: np.ndarray, since_ts: int | None, by: str) -> np.ndarray:
    """Cache rows inside the window, ordered by document id so the same data always yields the same order."""
    order = np.argsort(meta[:, 0], kind="stable")
    if since_ts is None:
        return order
    published, ingested = meta[order, 1], meta[order, 2]
    inside = ingested >= since_ts if by == "ingested" else (published >= since_ts) | ((published == 0) & (ingested >= since_ts))
    return order[inside]
