"""The composition root: settings -> adapters -> the App the use cases run on.

The embedder and the vector store are opened on first use, so reads (status, export, report) touch
only SQL: they stay fast and work while `serve` owns the Milvus Lite file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from . import state as run_state
from .adapters.notify import Teller
from .adapters.sql.alerts import SqlAlertHistory
from .adapters.sql.coordination import SqlCoordination
from .adapters.sql.engine import make_engine, upgrade
from .adapters.sql.ledger import SqlLedger
from .adapters.sql.reads import SqlStoryReads
from .adapters.sql.runs import SqlRunHistory
from .adapters.vector_cache import CachedVectorStore
from .clustering.assign import PredictionState
from .config import Settings, is_server_uri
from .faults import BrokenStore
from .failpoints import Failpoints, OutageSwitch
from .ports import (AlertHistory, Coordination, DocumentLedger, Embedder, NeighbourIndex, Notifier, ReportPages, RunFiles, RunHistory,
                    SearchIndex, StoryReads, VectorStore)
from .report.pages import HtmlPages


log = logging.getLogger("newsclust")

SQLITE_MAGIC = b"SQLite format 3\x00"




def check_home(settings: Settings) -> None:
    """Before anything is opened or created: the home is a folder we can write, and the SQLite file, if there is one,
    is an SQLite database. The checks read only (a probe file in the home is made and removed)."""
    home = settings.home
    if home.exists() and not home.is_dir():
        raise BrokenStore(f"{home}: a file, not a folder; give --home a folder (it is created if missing)")
    if not settings.database_url:
        sqlite = settings.sqlite_path
        try:
            with sqlite.open("rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except FileNotFoundError:
            head = None
        except IsADirectoryError:
            raise BrokenStore(f"{sqlite}: a folder where the SQLite history should be; move it aside or choose another --home") from None
        except OSError as exc:
            raise BrokenStore(f"{sqlite}: cannot be read ({exc.strerror}); check its owner and permissions") from exc
        if head and head != SQLITE_MAGIC:
            raise BrokenStore(f"{sqlite}: not an SQLite database (it starts with {head[:8]!r}); nothing was changed: move it aside "
                              "and restore it from a backup, or choose another --home")
    try:
        settings.ensure_dirs()
        probe = home / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
            raise BrokenStore(f"{exc.filename or home}: not writable ({exc.strerror}); newsclust keeps its inbox, history and "
                              "vectors in the home: give this user write access, or choose another --home") from exc
        raise


class App:
    """The wired service: settings and the ports the use cases run on (service/ports.py).

    History ports (SQL), run files and the notifier are built here at once (cheap: no model, no vector store).
    The embedder and the vector store are opened on first use, by name: `embedder` loads the model the first
    time it is read; `open_store()` / `open_neighbours()` open the store (and the kept graph in front of it);
    `search_index()` picks what a query may read. Reads (status, export, report) so touch only SQL."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, store: VectorStore | None = None):
        check_home(settings)
        self.settings = settings
        engine = make_engine(settings.resolved_database_url, settings.db_busy_timeout_s)
        try:
            upgrade(engine)
        except Exception as exc:
            broken = _broken_database(exc)
            if broken is None:
                raise
            engine.dispose()
            raise BrokenStore(f"{settings.sqlite_path if not settings.database_url else 'the database'}: {broken}; nothing was "
                              "changed: restore it from a backup (sqlite3's .recover can save what is readable), or choose another --home") from exc
        self.engine = engine
        self.ledger: DocumentLedger = SqlLedger(engine)
        self.runs: RunHistory = SqlRunHistory(engine)
        self.stories: StoryReads = SqlStoryReads(engine)
        self.alerts: AlertHistory = SqlAlertHistory(engine)
        self.coordination: Coordination = SqlCoordination(engine)
        self.run_files: RunFiles = run_state.StateFolder(settings.state_dir)
        home_key = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:16]
        self.notifier: Notifier = Teller(settings.reports_dir / "alerts.xml", f"urn:newsclust:{home_key}",
                                         webhook=(lambda: self.webhook) if settings.webhook_url else None)
        self.pages: ReportPages = HtmlPages(settings.reports_dir, settings.report_max_points, settings.seed, settings.report_keep_runs)
        self._home_key = home_key
        self._webhook = None
        self._embedder = embedder
        self._store = store
        self._store_handed_in = store is not None  # a store handed in is never closed early: it could not be opened again
        self._neighbours: CachedVectorStore | None = None
        self._pstate: tuple[int, PredictionState | None] | None = None
        # one writer at a time inside a process: the watcher and the scheduler share Milvus and SQLite
        self.write_lock = threading.RLock()
        self.failpoints = Failpoints(settings.failpoint)

    @property
    def embedder(self) -> Embedder:
        """The model, loaded the first time it is asked for (seconds: torch and the weights)."""
        if self._embedder is None:
            from .adapters.embedders import make_embedder

            s = self.settings
            self._embedder = make_embedder(s.embedder, s.embedder_path, s.embed_batch_size, s.max_text_chars, s.max_tokens, s.embed_precision, s.embed_device)
        return self._embedder

    @property
    def store_is_server(self) -> bool:
        """Whether the configured vector store is a server (config.is_server_uri), known without opening it."""
        return is_server_uri(self.settings.resolved_milvus_uri)

    @property
    def opened_store(self) -> VectorStore | None:
        """The vector store this process holds open now; None once let go (a rebuild closes Milvus Lite)."""
        return self._store

    def open_store(self) -> VectorStore:
        """Load the model (the store needs its dimension), open the vector store and, with vector_cache on, the
        neighbour index in front of it: the store the use cases write to and search."""
        s = self.settings
        if self._store is None:
            from .adapters.milvus import open_milvus

            self._store = open_milvus(s.resolved_milvus_uri, s.collection, lambda: self.embedder.dim, s.milvus_token)
            if self.failpoints.outages:
                self._store = OutageSwitch(self._store, s.home / "faults" / "vector-store-down")
            if self._neighbours is not None:  # opened again after set_store_aside: the index fronts the new one
                self._neighbours.store = self._store
        if s.vector_cache and self._neighbours is None:
            self._neighbours = CachedVectorStore(self._store, self._copy_folder(), self.embedder.dim,
                                                 source=f"{s.resolved_milvus_uri}#{s.collection}", knn_k=s.knn_k)
        return self._neighbours if self._neighbours is not None else self._store

    def open_neighbours(self) -> NeighbourIndex | None:
        """The kept kNN graph and live index (the vector cache), opening the store; None when vector_cache = false."""
        if not self.settings.vector_cache:
            return None
        self.open_store()
        return self._neighbours

    def set_store_aside(self) -> bool:
        """Let the vector store go for now, to be opened again on next use (open_store); True if it was let go.

        An in-process store (Milvus Lite) holds every vector of the collection (3.9 GB at 1M documents, more than
        the rest of a rebuild). A rebuild from the kept graph needs it only to check the copy's count, so it lets
        go after that check and the next write opens it again (about 3 s at 1M). The store says whether it holds
        anything to hand back (VectorStore.release: a server does not); a store handed in by the caller stays."""
        if self._store is None or self._store_handed_in or self._neighbours is None:
            return False
        try:
            released = self._store.release()
        except Exception as exc:  # noqa: BLE001 — the rebuild goes on; the next use opens a new client anyway
            log.warning("letting the vector store go for the rebuild failed (%s: %s)", type(exc).__name__, exc)
            released = True
        if released:
            self._store = None
        return released

    def search_index(self, serving: bool = False) -> SearchIndex:
        """What a query searches. The writer's vector copy under HOME/state/ when it is readable (beside a running
        serve, which holds a Milvus Lite file, it is the only way in); else the store, unless a serving process
        owns it (Lite: one process per file) — then LookupError."""
        from .adapters.cache_reader import CopyIndex

        s = self.settings
        folder = self._copy_folder(mine=False)
        copy = CopyIndex(folder, self.embedder.dim, source=copy_source(folder, s.resolved_milvus_uri, s.collection))
        if copy.usable:
            return copy
        if not serving or self.store_is_server:
            return self.open_store()
        raise LookupError("search beside a running serve reads its vector copy under HOME/state/, and there is none "
                          "(vector_cache = false): stop serve, or use a Milvus server")

    def _copy_folder(self, mine: bool = True) -> Path:
        """The vector copy's folder: several workers keep one each (they would tear one shared file), refilled when the
        store holds more; a query reads the home's one copy."""
        s = self.settings
        worker = f"-{s.resolved_worker_name}" if s.shared and mine else ""
        return s.state_dir / f"vectors-{s.collection}{worker}"

    @property
    def webhook(self):
        """The webhook poster, started on the first alert (None when no webhook_url is set)."""
        if self._webhook is None and self.settings.webhook_url:
            from .adapters.notify import Webhook
            from .adapters.sql.outbox import WebhookOutbox

            self._webhook = Webhook(self.settings.webhook_url, outbox=WebhookOutbox(self.engine), key_prefix=f"newsclust:{self._home_key}")
        return self._webhook

    def resume_webhook(self) -> None:
        """At a serving start: alerts a stop or a dead endpoint left in the outbox are sent now, not at the next alert."""
        try:
            self.webhook
        except Exception as exc:  # noqa: BLE001 — they wait for the next start or the next alert
            log.warning("webhook outbox not resumed (%s: %s)", type(exc).__name__, exc)

    def prediction_state(self, run_id: int) -> PredictionState | None:
        """The run's prediction state, read once per run and kept."""
        if self._pstate is None or self._pstate[0] != run_id:
            self._pstate = (run_id, self.run_files.load_prediction_state(run_id))
        return self._pstate[1]

    def forget_prediction_state(self) -> None:
        self._pstate = None

    def close(self) -> None:
        if self._webhook is not None:
            self._webhook.close()
            self._webhook = None
        if self._neighbours is not None or self._store is not None:
            (self._neighbours or self._store).close()  # the index closes the store it fronts
            self._store = self._neighbours = None
        self.engine.dispose()


def copy_source(folder: Path, uri: str, collection: str) -> str:
    """The source a vector copy must name to be read: ours (store URI # collection), or the writer's spelling of the
    same Lite file (serve started with `--home h`, search with `--home /abs/h`: one file, two strings)."""
    ours = f"{uri}#{collection}"
    if is_server_uri(uri):
        return ours
    try:
        written = json.loads((folder / "source.json").read_text()).get("source", "")
    except (OSError, ValueError):
        return ours
    path, _, coll = written.rpartition("#")
    return written if coll == collection and path and Path(path).resolve() == Path(uri).resolve() else ours


def _broken_database(exc: BaseException) -> str | None:
    """SQLite's word for a file that is damaged, not busy: 'file is not a database', 'database disk image is malformed'."""
    import sqlite3

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            text = str(exc)
            if "not a database" in text or "malformed" in text or "corrupt" in text:
                return text
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)
    return None
