"""The writer's live faiss index over the vector copy's rows, kept in memory and saved beside the copy.

Why saved: the first arrival after a start needed the index over every cached vector, and building it
(IVF training, then adding every row) took 11-15 s at 100k documents on 2 busy cores, in that file's
ingest: a 300-row file became searchable 12 s after its embedding. Read back from its file, the same
index takes well under a second; only rows appended since it was saved are added.

Why warmed: `serve` calls warm_up() in a background thread as it starts, so a file that arrives during
the build waits only for the rest of it (`over` waits for a build in progress instead of starting its
own), and one that arrives after finds the index ready.

Why retrained in the background: an inverted file's lists grow as the collection does, so the index is trained
again each time the collection doubles; at 880k rows that cost ~45 CPU s inside one batch of the writer, where a file
waited for it. The retrain now runs in a thread beside the writer, which goes on with the outgrown index until the
retrained one takes over, a fixed share of rows later (RETRAIN_LEAD).

The saved index covers rows 0..ntotal-1 of the copy, which only grow by appending: a file holding more
rows than the copy is ignored; whatever rewrites rows (a refill, a corrected vector) drops it first.
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

from ..clustering.graph import list_centres

log = logging.getLogger("newsclust.vector_cache")

# An IVF index trained on n vectors is retrained once the collection doubles: its lists would grow long.
RETRAIN_GROWTH = 2.0
# The retrain runs in a background thread while batches go on joining with the outgrown index, which the retrained one
# replaces once the copy holds this share more rows than the retrain started with (waiting for the thread there if it
# is behind): a row count, not a moment, so the kept graph does not depend on the machine's speed. At 880k rows the
# retrain took ~45 CPU s in one batch of the writer (a 1M insert's last 100k rows: 102 s against ~60).
RETRAIN_LEAD = 0.1
# ...at most this many rows: until then both indexes are held (1.5 GB each at 1M 384-d rows), and a slow stream takes
# days to bring 10% of a large collection.
RETRAIN_LEAD_MAX_ROWS = 100_000
# The retrain's faiss threads: the cores the writer's join leaves (its two threads), at least one. faiss's OpenMP team
# in the retrain thread is its own; at full width beside the join's it would spin-wait on cores the join needs.
RETRAIN_THREADS = max(1, len(os.sched_getaffinity(0)) - 2) if hasattr(os, "sched_getaffinity") else 1
# The saved index is written again when at least this share of its rows was added since it was saved.
RESAVE_SHARE = 0.1


class LiveIndex:
    """build(vectors, centres) -> a faiss index (centres: graph.list_centres of the index it replaces as the collection
    outgrew it, or None); exact_max_n: the largest row count build() indexes exactly (no training)."""

    def __init__(self, folder: Path, dim: int, build: Callable[[np.ndarray, object], object], exact_max_n: int):
        self._dim = dim
        self._path, self._info_path = folder / "live-index.faiss", folder / "live-index.json"
        self._build, self._exact_max_n = build, exact_max_n
        self._index = None
        self._built_at = 0  # rows the index was trained on
        self._saved_rows = 0  # rows the file on disk covers
        self._lock = threading.RLock()  # one build or load at a time; users wait for it
        self._retrain: _Retrain | None = None  # the outgrown index's successor, being built
        self._retrain_from: int | None = None  # the rows a retrain started at: saved, so the next process goes on with it

    @property
    def rows(self) -> int | None:
        """How many rows the index holds now (None: none loaded or built); never waits."""
        index = self._index
        return None if index is None else int(index.ntotal)

    def ready(self, rows: int):
        """The index if it covers exactly rows 0..rows-1 now, else None; never waits."""
        index = self._index
        return index if index is not None and index.ntotal == rows else None

    def over(self, rows: int, vectors: Callable[[], np.ndarray]):
        """The index over rows 0..rows-1 (from memory, the saved file, or built from vectors()[:rows]); waits for a
        build in progress. vectors(): the copy's rows (they only grow by appending while a retrain reads them)."""
        with self._lock:
            index = self._index if self._index is not None else self._load(rows)
            if index is None or index.ntotal > rows:
                self._cancel_retrain()
                index = self._built(rows, vectors, None)
            else:
                _extend(index, rows, vectors)
            self._index = index
            if self._retrain_from is None and rows > self._exact_max_n and rows > RETRAIN_GROWTH * self._built_at:
                self._retrain_from = rows
                self._write_info()
            if self._retrain_from is not None and self._retrain is None:  # started now, or by the last process
                self._retrain = _Retrain(self._build, vectors, self._retrain_from, self._dim, list_centres(index))
                log.info("live index retraining over %d rows in the background", self._retrain_from)
            if self._retrain is not None:
                self._retrain.copy_rows = rows
                if rows >= self._retrain.until:
                    return self._take_retrained(rows, vectors)
            return index

    def _built(self, rows: int, vectors: Callable[[], np.ndarray], centres: np.ndarray | None):
        t0 = time.perf_counter()
        index = self._build(np.asarray(vectors()[:rows], dtype=np.float32).reshape(rows, self._dim), centres)
        self._index, self._built_at = index, rows
        log.info("live index built over %d rows in %.1f s", rows, time.perf_counter() - t0)
        self._save()
        return index

    def _take_retrained(self, rows: int, vectors: Callable[[], np.ndarray]):
        """The retrained index, extended to rows 0..rows-1, replaces the outgrown one (built here if the thread
        failed)."""
        retrain, self._retrain, self._retrain_from = self._retrain, None, None
        t0 = time.perf_counter()
        try:
            index = retrain.result()
        except Exception as exc:  # noqa: BLE001 - a failed background build is done again here, in the open
            log.warning("live index retrain failed in the background (%s): built again", exc)
            return self._built(rows, vectors, list_centres(self._index))
        _extend(index, rows, vectors)
        self._index, self._built_at = index, retrain.started_at
        log.info("live index retrained over %d rows (waited %.1f s)", retrain.started_at, time.perf_counter() - t0)
        self._save()
        return index

    def _cancel_retrain(self) -> None:
        """The retrain in progress is let go, its answer unused, and not taken up again (the index it would replace is
        gone). Its thread ends by itself: faiss cannot be stopped midway, and the copy's rows it reads are only ever
        replaced by renaming, never cut."""
        retrain, self._retrain, self._retrain_from = self._retrain, None, None
        if retrain is not None:
            retrain.cancel()

    def close(self) -> None:
        """A retrain in progress is let go; the next process starts it again from the same rows (_retrain_from, saved
        with the index), so the index it takes over at is the same. Does not wait for the lock (a build may hold it)."""
        retrain = self._retrain
        if retrain is not None:
            retrain.cancel()

    def append(self, rows: int, new: np.ndarray, add: Callable[[object, np.ndarray], None]):
        """`new` appended as rows rows.. by add(index, new) (graph.add_rows), to the index over rows 0..rows-1 (over)."""
        with self._lock:
            index = self._index
            if index is None or index.ntotal != rows:
                raise RuntimeError(f"live index holds {None if index is None else index.ntotal} rows, not {rows}: call over() first")
            add(index, new)
            return index

    def forget_rows_from(self, rows: int) -> None:
        """Rows rows.. leave the index again: they were added for a write that then failed, before the copy took them.
        Both kinds build() makes remove rows by range. A file saved meanwhile with them holds more rows than the copy
        and is not read back (_load)."""
        import faiss

        with self._lock:
            index = self._index
            if index is not None and index.ntotal > rows:
                index.remove_ids(faiss.IDSelectorRange(rows, index.ntotal))

    def install(self, index, rows: int) -> None:
        """An index built elsewhere over rows 0..rows-1 (a graph recomputed from scratch) becomes the live one."""
        with self._lock:
            self._cancel_retrain()
            self._index, self._built_at = index, rows
            self._save()

    def warm_up(self, rows: Callable[[], int], vectors: Callable[[], np.ndarray]) -> float:
        """Load or build the index over the rows there are now (serve's start, in the background), and save it again
        if much was added to the saved one. Returns the seconds spent. rows: counted inside the lock, so a file that
        grows the index meanwhile is not taken for a stale index (a rebuild of it)."""
        t0 = time.perf_counter()
        with self._lock:
            if self._index is None:  # one in memory is the writer's: it may hold a batch the copy does not yet
                self.over(rows(), vectors)
            self.save_if_behind()
        return time.perf_counter() - t0

    def save_if_behind(self, wait: bool = True) -> None:
        """Write the index again if RESAVE_SHARE of its rows came since it was saved; wait=False: not while a build runs."""
        if not self._lock.acquire(blocking=wait):
            return
        try:
            if self._index is not None and self._index.ntotal - self._saved_rows >= RESAVE_SHARE * max(self._saved_rows, 1):
                self._save()
        finally:
            self._lock.release()

    def drop(self) -> None:
        """Forget the index, in memory and on disk: rows it holds are about to be rewritten."""
        with self._lock:
            self._cancel_retrain()
            self._index, self._built_at, self._saved_rows = None, 0, 0
            for path in (self._info_path, self._path):
                path.unlink(missing_ok=True)

    def _load(self, rows: int):
        import faiss

        try:
            info = json.loads(self._info_path.read_text())
            if not self._path.exists() or info.get("rows", rows + 1) > rows:
                return None
            index = faiss.read_index(str(self._path))
        except (OSError, ValueError, RuntimeError) as exc:  # a torn or foreign file: built again
            log.info("saved live index not used (%s)", exc)
            return None
        if index.ntotal != info["rows"] or index.ntotal > rows:
            return None
        self._index, self._built_at, self._saved_rows = index, int(info.get("built_at", index.ntotal)), index.ntotal
        retrain_from = info.get("retrain_from")
        self._retrain_from = int(retrain_from) if retrain_from is not None and retrain_from <= rows else None
        return index

    def _save(self) -> None:
        """Written to a temporary name, then renamed; its info last, so a file without matching info is never read."""
        import faiss

        index = self._index
        tmp = self._path.with_suffix(".tmp")
        try:
            self._info_path.unlink(missing_ok=True)
            faiss.write_index(index, str(tmp))
            os.replace(tmp, self._path)
            self._saved_rows = int(index.ntotal)
            self._write_info()
        except (OSError, RuntimeError) as exc:  # a full disk: the index in memory still serves; the next start builds it
            log.warning("live index not saved (%s)", exc)
            tmp.unlink(missing_ok=True)

    def _write_info(self) -> None:
        """What the saved file holds (rows, the rows it was trained at) and where a retrain started, if one runs."""
        if not self._saved_rows or not self._path.exists():
            return
        info = {"rows": self._saved_rows, "built_at": int(self._built_at)}
        if self._retrain_from is not None:
            info["retrain_from"] = self._retrain_from
        tmp_info = self._info_path.with_suffix(".tmp")
        try:
            tmp_info.write_text(json.dumps(info))
            os.replace(tmp_info, self._info_path)
        except OSError as exc:  # a full disk: the next start retrains from where it stands then
            log.warning("live index info not saved (%s)", exc)


def _extend(index, rows: int, vectors: Callable[[], np.ndarray]) -> None:
    """The copy's rows index.ntotal..rows-1 added to an index over its first rows (none where it holds them all)."""
    if index.ntotal < rows:
        index.add(np.ascontiguousarray(vectors()[index.ntotal:rows], dtype=np.float32))


class _Retrain:
    """A background thread's build(vectors, centres) over rows 0..started_at-1, then extended with the rows the copy
    gains (copy_rows, set by the writer) until `until` rows, where it takes over (LiveIndex.over)."""

    def __init__(self, build: Callable[[np.ndarray, np.ndarray | None], object], vectors: Callable[[], np.ndarray], rows: int,
                 dim: int, centres: np.ndarray | None):
        self.started_at, self.copy_rows = rows, rows
        self.until = rows + max(1, min(int(RETRAIN_LEAD * rows), RETRAIN_LEAD_MAX_ROWS))
        self._build, self._vectors, self._dim, self._centres = build, vectors, dim, centres
        self._index, self._error = None, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-index-retrain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import faiss

        try:
            faiss.omp_set_num_threads(RETRAIN_THREADS)  # this thread's own OpenMP setting; the writer's keeps its own
            rows = self.started_at
            x = np.asarray(self._vectors()[:rows], dtype=np.float32)
            if len(x) < rows:
                raise RuntimeError(f"the copy holds {len(x)} rows, not the {rows} the retrain started at")
            self._index = index = self._build(x.reshape(rows, self._dim), self._centres)  # read by the writer after join
            del x  # the copy's mapped pages
            while not self._stop.is_set() and index.ntotal < self.until:  # the rows that came meanwhile, as they come
                have = min(self.copy_rows, self.until)
                got = self._vectors()[index.ntotal:have] if have > index.ntotal else ()
                if len(got):
                    index.add(np.ascontiguousarray(got, dtype=np.float32))
                else:
                    self._stop.wait(0.2)
        except Exception as exc:  # noqa: BLE001 - raised to the writer by result()
            self._error = exc

    def result(self):
        """The retrained index (waits for the thread); raises what the thread raised."""
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._index

    def cancel(self) -> None:
        self._stop.set()
