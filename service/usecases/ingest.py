"""A file from the inbox: parse -> dedup -> embed -> vector store -> history -> placement -> processed/ or failed/."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..domain import Headline, Rejected, unix_seconds, utcnow
from ..faults import transient_cause
from ..files import SafeCsvWriter, atomic_open, atomic_write
from ..ingest import BadFile, normalise_text, read_headlines
from .arrivals import assign_arrivals
from .common import Progress, best_effort, no_progress

if TYPE_CHECKING:
    from ..ports import App

log = logging.getLogger("newsclust")


@dataclass
class IngestResult:
    file: str
    state: str  # processed, failed, duplicate, interrupted, retrying, gone, waiting (not whole yet), settled (moved once still)
    rows_seen: int = 0
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    predicted: int = 0
    attempt: int = 1
    encoding: str | None = None
    reason: str | None = None
    moved_to: str | None = None
    transient: bool = False  # retrying because our environment failed, not the file
    ledger_id: int | None = None  # its row in ingested_files
    seconds: dict[str, float] = field(default_factory=dict)
    retry_in_s: float | None = None  # left in the inbox on purpose (written in place, not whole yet): look again then
    warnings: list[str] = field(default_factory=list)  # what the summary line must say (dates not understood, a cut last row)


# an internal error (a bug, not the file, not the environment) is retried this often before the file goes to failed/
MAX_INTERNAL_ATTEMPTS = 3


# longest file name we write: most file systems stop at 255 bytes, and ".reason.txt" and a time suffix go on top
MAX_NAME_BYTES = 180


def sha256_of(path: Path, size: int | None = None) -> str:
    """Of the whole file, or of its first `size` bytes (what a read of a growing file took)."""
    h = hashlib.sha256()
    left = size if size is not None else float("inf")
    with path.open("rb") as fh:
        while left > 0 and (block := fh.read(int(min(1 << 20, left)))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def short_name(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """A name that fits the file system: a long stem is cut and a digest of the whole name keeps it unique."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = name, ""
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    tail = f"~{digest}" + (f".{suffix}" if suffix else "")
    cut = stem.encode("utf-8")[: limit - len(tail.encode("utf-8"))].decode("utf-8", "ignore")
    return cut + tail


def _move(path: Path, folder: Path) -> Path:
    """Into folder under the same name (shortened if too long); a name already there gets a time suffix instead of being overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    name = short_name(path.name)
    target = folder / name
    if target.exists() or target.is_symlink():
        p = Path(name)
        target = folder / f"{p.stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}.{time.monotonic_ns() % 10**6}{p.suffix}"
    shutil.move(str(path), str(target))
    return target


def _fail(app: App, path: Path, reason: str, rejects: list[Rejected] | None = None) -> Path:
    failed_dir = app.settings.failed_dir
    moved = _move(path, failed_dir) if (path.exists() or path.is_symlink()) else failed_dir / short_name(path.name)
    atomic_write(moved.with_name(moved.name + ".reason.txt"), reason + "\n")
    if rejects:
        _write_rejects(moved.with_name(moved.name + ".rejects.csv"), rejects)
    return moved


def _write_rejects(target: Path, rejects: list[Rejected]) -> None:
    columns = sorted({k for r in rejects for k in r.row})
    with atomic_open(target) as fh:
        w = SafeCsvWriter(fh)
        w.writerow(["line", "reason", *columns])
        for r in rejects:
            w.writerow([r.line, r.reason, *(r.row.get(c, "") for c in columns)])


class Interrupted(Exception):
    """Shutdown asked mid-file: what is written stays (idempotent), the file stays in the inbox for the restart."""


def recover(app: App) -> dict[str, int]:
    """At a writer's start: runs and files a killed process left half-done are marked so; their files are still in the inbox."""
    return {"files": app.ledger.mark_interrupted(), "runs": app.runs.abandon_running_runs("interrupted")}


def ingest_file(app: App, path: Path, progress: Progress = no_progress, should_stop: Callable[[], bool] = lambda: False,
                settle_s: float = 0.0, tries: int = 1) -> IngestResult:
    """One file through parse -> dedup -> embed -> Milvus -> SQLite -> placement -> processed/ or failed/.

    Milvus is written before SQLite and both writes are idempotent (primary keys come from
    document identity), so a crash anywhere leaves the file in the inbox to be redone safely.
    Whose fault a failure is decides where the file goes (service/faults.py): the file's own
    content sends it to failed/ with its reason; our environment failing (SQLite locked, the
    vector store unreachable, a full disk) leaves it in the inbox, state 'retrying', to be taken again.

    settle_s > 0 (the watcher): a file modified less than settle_s ago may still be written in place. Its
    rows are stored, but it stays in the inbox until it held still that long (a writer that reopens it to
    append would otherwise start a new file without a header); an empty or header-only one waits. A file
    that changed while it was read is taken again at once (ingest is idempotent: only new rows are stored).
    """
    result = IngestResult(file=path.name, state="failed")
    try:
        _ingest(app, path, result, progress, should_stop, settle_s, tries)
    except Exception as exc:  # noqa: BLE001 — one file's failure must not stop the stream
        cause = transient_cause(exc)
        if cause is None and result.attempt >= MAX_INTERNAL_ATTEMPTS:
            log.exception("ingest of %s failed (attempt %d)", path.name, result.attempt)
            result.reason = f"{path.name}: internal error while ingesting (attempt {result.attempt}): {type(exc).__name__}: {exc}"
            try:
                _finish_failed(app, path, result, result.ledger_id, [])
                return result
            except Exception as move_exc:  # noqa: BLE001 — failed/ itself is the problem: the service parks the file
                exc = move_exc
                cause = transient_cause(move_exc)
        result.state, result.transient = "retrying", cause is not None
        result.reason = f"{path.name}: {cause or f'internal error ({type(exc).__name__}: {exc})'}; the file stays in the inbox and is taken again"
        if cause is None:
            log.exception("ingest of %s failed (attempt %d), will retry", path.name, result.attempt)
        if result.ledger_id is not None:
            best_effort(app.ledger.note_file, result.ledger_id, "retrying", result.reason)
    return result


def ingest_copy(app: App, source: Path, progress: Progress = no_progress) -> IngestResult:
    """`newsclust ingest FILE`: the user's file stays where it is; a copy goes through the inbox path (processed/ or
    failed/), under a name of its own when a file of that name already waits in the inbox."""
    if source.parent.resolve() == app.settings.inbox.resolve():
        return ingest_file(app, source, progress)
    if not source.exists():
        return IngestResult(file=source.name, state="failed", reason=f"{source}: no such file")
    if source.is_dir():
        return IngestResult(file=source.name, state="failed", reason=f"{source}: a directory, not a CSV file")
    staged = app.settings.inbox / source.name
    if staged.exists() or staged.is_symlink():  # never overwrite a file waiting in the inbox
        staged = app.settings.inbox / f"{source.stem}.{os.getpid()}-{time.monotonic_ns() % 10**9}{source.suffix or '.csv'}"
    shutil.copy2(source, staged)
    return ingest_file(app, staged, progress)


def _ingest(app: App, path: Path, result: IngestResult, progress: Progress, should_stop: Callable[[], bool], settle_s: float = 0.0,
            tries: int = 1) -> None:
    s = app.settings
    if not (path.exists() or path.is_symlink()):
        result.state, result.reason = "gone", f"{path.name}: removed from the inbox before it was taken"
        return
    if path.is_symlink() or not path.is_file():
        what = "a symlink" if path.is_symlink() else "a directory" if path.is_dir() else "not a regular file"
        result.reason = f"{path.name}: {what}; drop regular CSV files into the inbox"
        result.moved_to = str(_fail(app, path, result.reason))
        return

    before = _signature(path)
    digest = sha256_of(path, before[0])  # the bytes read below: a file growing meanwhile is read up to here
    quiet_s = time.time() - before[1] / 1e9
    settling = settle_s > 0 and quiet_s < settle_s
    done = app.ledger.processed_file(digest)
    if done is not None:
        if settling:  # taken already, still warm: rows appended now must not go into processed/ unseen
            result.state, result.retry_in_s = "waiting", settle_s - quiet_s
            result.reason = f"{path.name}: rows taken; it stays in the inbox until it holds still {settle_s:.0f}s"
            return
        if app.ledger.file_name(done) == path.name and settle_s > 0:
            result.state, result.reason = "settled", f"{path.name}: held still {settle_s:.0f}s after its rows were taken; moved to processed/"
        else:
            result.state, result.reason = "duplicate", f"{path.name}: same bytes as a file already ingested; nothing to do"
        result.moved_to = str(_move(path, s.processed_dir))
        return

    result.attempt = tries  # if the database cannot be written (a full disk), this try still counts in the service's status
    file_id, result.attempt = app.ledger.start_file(path.name, digest, before[0], tries)
    result.ledger_id = file_id
    rejects: list[Rejected] = []
    t = {"parse": 0.0, "embed": 0.0, "milvus": 0.0, "sqlite": 0.0, "predict": 0.0}
    try:
        t0 = time.perf_counter()
        info, chunks = read_headlines(path, size=before[0])
        result.encoding = info.encoding
        t["parse"] += time.perf_counter() - t0
        seen_keys: set[str] = set()
        while True:
            t0 = time.perf_counter()
            chunk = next(chunks, None)
            app.failpoints.reach("parse")
            t["parse"] += time.perf_counter() - t0
            if chunk is None:
                break
            if should_stop():
                raise Interrupted
            rejects.extend(chunk.rejects)
            result.rows_seen += len(chunk.headlines) + len(chunk.rejects)
            fresh = [h for h in chunk.headlines if not (h.key in seen_keys or seen_keys.add(h.key))]
            result.duplicates += len(chunk.headlines) - len(fresh)
            stored = _store_headlines(app, fresh, file_id, t, should_stop, retry=result.attempt > 1)
            result.stored += stored.stored
            result.updated += stored.updated
            result.duplicates += stored.duplicates
            result.predicted += stored.predicted
            progress("rows", result.rows_seen)
    except Interrupted:
        app.ledger.finish_file(file_id, "interrupted", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                             rejected=len(rejects), updated=result.updated, encoding=result.encoding,
                             reason="shutdown before the end of the file; it stays in the inbox")
        result.state, result.reason = "interrupted", "shutdown before the end of the file; it stays in the inbox and is taken again at restart"
        return
    except BadFile as exc:
        if settling and exc.incomplete:  # a writer has made the file and not yet written its rows
            result.state, result.retry_in_s = "waiting", settle_s - quiet_s
            result.reason = f"{exc}; it was written {quiet_s:.0f}s ago, so it waits for its rows"
            app.ledger.note_file(file_id, "waiting", result.reason)
            return
        result.reason = str(exc)
        result.rejected = len(rejects)
        result.seconds = {k: round(v, 3) for k, v in t.items()}
        _finish_failed(app, path, result, file_id, rejects)
        return
    result.rejected = len(rejects)
    result.seconds = {k: round(v, 3) for k, v in t.items()}
    result.warnings.extend(info.dates.summary())
    if rejects:
        rejects_name = short_name(path.name)
        if (s.failed_dir / f"{rejects_name}.rejects.csv").exists():  # an earlier file of that name keeps its report
            rejects_name = short_name(f"{Path(rejects_name).stem}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}{Path(rejects_name).suffix}")
        reason = f"{path.name}: {len(rejects)} of {result.rows_seen} rows rejected (see the rejects CSV for line numbers and reasons); the other rows were ingested"
        s.failed_dir.mkdir(parents=True, exist_ok=True)
        _write_rejects(s.failed_dir / f"{rejects_name}.rejects.csv", rejects)
        atomic_write(s.failed_dir / f"{rejects_name}.reason.txt", reason + "\n")
        result.reason = reason
    notes = "; ".join(filter(None, [result.reason, *result.warnings])) or None  # the ledger keeps what the summary line said
    app.ledger.finish_file(file_id, "processed", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                         rejected=result.rejected, updated=result.updated, encoding=result.encoding, reason=notes)
    result.state = "processed"
    if _signature(path) != before or sha256_of(path, before[0]) != digest:  # written to while we read it: read it again
        result.retry_in_s = 0.0
        result.warnings.append("changed while it was read; taken again for the rest")
        return
    if settling:
        result.retry_in_s = settle_s - quiet_s
        result.warnings.append(f"written in place {quiet_s:.0f}s ago: stays in the inbox until it holds still {settle_s:.0f}s")
        return
    app.failpoints.reach("move")
    result.moved_to = str(_move(path, s.processed_dir))


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _finish_failed(app: App, path: Path, result: IngestResult, file_id: int | None, rejects: list[Rejected]) -> None:
    """Moved first, recorded second: if the move fails, the ledger row is still open and the retry continues it."""
    result.moved_to = str(_fail(app, path, result.reason or "failed", rejects))
    result.state = "failed"
    if file_id is not None:
        app.ledger.finish_file(file_id, "failed", seen=result.rows_seen, stored=result.stored, duplicate=result.duplicates,
                             rejected=result.rejected, updated=result.updated, encoding=result.encoding, reason=result.reason)


@dataclass
class Stored:
    stored: int = 0
    updated: int = 0
    duplicates: int = 0
    predicted: int = 0


def _store_headlines(app: App, headlines: list[Headline], file_id: int, t: dict[str, float], should_stop=lambda: False,
                     retry: bool = False) -> Stored:
    """New headlines are stored; a known guid or url with other text is a correction (newest text wins, the old
    one goes to document_revisions, the vector is re-embedded and the document placed again); identical text is a no-op."""
    out = Stored()
    if not headlines:
        return out
    t0 = time.perf_counter()
    # stored texts in the normal form: a row stored before texts were normalised is not "corrected" by its own words
    known = {i: (normalise_text(t), normalise_text(d)) for i, (t, d) in app.ledger.stored_texts([h.id for h in headlines]).items()}
    t["sqlite"] += time.perf_counter() - t0
    new = [h for h in headlines if h.id not in known]
    corrected = [h for h in headlines if h.id in known and known[h.id] != (h.title, h.description)]
    out.duplicates = len(headlines) - len(new) - len(corrected)
    if retry and out.duplicates:
        # an earlier attempt of this file stored these rows, then failed before placing them: place them now
        unplaced = app.ledger.unplaced_ids([h.id for h in headlines if h.id in known and known[h.id] == (h.title, h.description)])
        if len(unplaced):
            t0 = time.perf_counter()
            out.predicted += assign_arrivals(app, unplaced, app.open_store().vectors_of(unplaced))
            t["predict"] += time.perf_counter() - t0
    bs = 256  # small enough that a shutdown between batches comes within seconds
    for kind, todo in (("new", new), ("corrected", corrected)):
        for start in range(0, len(todo), bs):
            if should_stop():
                raise Interrupted
            batch = todo[start : start + bs]
            t0 = time.perf_counter()
            vectors = app.embedder.embed([h.text for h in batch])
            app.failpoints.reach("embed")
            t["embed"] += time.perf_counter() - t0
            now = utcnow()
            ids = np.array([h.id for h in batch], np.int64)
            t0 = time.perf_counter()
            published = np.array([int(unix_seconds(h.published_at)) for h in batch], np.int64)
            app.open_store().upsert(ids, vectors, published, np.full(len(batch), int(unix_seconds(now)), np.int64))
            app.failpoints.reach("milvus")
            t["milvus"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            if kind == "new":
                app.ledger.add_documents(batch, file_id, now)
                out.stored += len(batch)
            else:
                app.ledger.revise_documents(batch, file_id, now)
                out.updated += len(batch)
            app.failpoints.reach("sqlite")
            t["sqlite"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            out.predicted += assign_arrivals(app, ids, vectors)
            t["predict"] += time.perf_counter() - t0
    return out
