"""`newsclust serve`: the inbox watcher and the rebuild schedule in one process, until told to stop.

What it promises an operator (README, Robustness):
- a file our environment could not take (SQLite locked, the vector store unreachable, a full disk)
  stays in the inbox and is taken again with exponential backoff; a file that keeps failing for a
  reason that is not the file's (its move, say) is parked after a few tries, with the reason in status;
- every rebuild asked is answered: one asked during a rebuild runs right after it, a failing rebuild
  backs off instead of looping;
- the watcher cannot die silently: if its worker stops it is restarted, and if that fails the process
  exits non-zero so a supervisor restarts it.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

from service import handoff, usecases
from service.faults import Backoff, transient_cause
from service import state as run_state
from service.state import StatusBoard, status_path as status_file_path
from service.usecases.schedule import ASKED, CHECK, NEW_STORY, WAIT, after_arrivals, plan_for

from .scheduler import RebuildSchedule
from .watcher import InboxWatcher

log = logging.getLogger("newsclust.serve")

# a file that keeps failing for a reason that is not the file's (its move, an internal error) is parked after this many tries
PARK_AFTER = 4
# The rebuild leader of a shared home catches up this often between rebuilds (CachedVectorStore.keep_up), so its
# rebuild finds the copy current: read at the rebuild, the new rows' vectors and graph upkeep made its graph stage
# 3-6x a single writer's (600 new rows a rebuild on the embedded server, 0.9-1.4 s against 0.14-0.28 s), work the
# writer does as it writes.
KEEP_UP_EVERY_S = 1.0


class WatcherDied(RuntimeError):
    pass


class Service:
    def __init__(self, app, on_event=None, role: str = "all"):
        self.app = app
        self.on_event = on_event or (lambda kind, payload: log.info("%s %s", kind, payload))
        s = app.settings
        self.role = role  # all, ingest (take files only) or rebuild (the schedule only)
        self.worker = s.resolved_worker_name
        self._claimed: set[str] = set()  # files this worker holds a claim on (several workers on one home)
        self._leader = False
        self.backoff = Backoff(s.retry_first_s, s.retry_max_s)
        self.watcher = InboxWatcher(s.inbox, self.take_file, stable_wait_s=s.stable_wait_s, poll=s.poll_inbox, settle_s=s.settle_s)
        self.schedule = RebuildSchedule(self._rebuild_job, s.rebuild_interval_s)
        self._stopping = threading.Event()
        self.rebuilding = threading.Event()
        self._lock = threading.Lock()  # guards self.plan: the job, the request poller and the file handler change it
        # (and self._taken: the requests the job has listed and will answer; the poller does not ask for them again,
        # or a request still on disk while its answer is written set off a second rebuild nobody asked for)
        self._taken: set[str] = set()
        self.plan = plan_for(s)  # when to rebuild: usecases/schedule.py decides, this process acts
        self._files: dict[str, dict] = {}  # name -> attempts, reason, state (retrying / parked)
        self.maps = MapRefiner(app, on_event=self.on_event)  # refined maps after each rebuild's quick page
        self.api = None  # the query API (workers/api.py), started by open()
        self._joined_at_stop: list[threading.Thread] = []  # background work the stop waits for (_in_background)
        self._keeper: threading.Thread | None = None  # the rebuild leader's catch-up between rebuilds (_keep_up)
        self.api_url: str | None = None
        self._status = {"pid": os.getpid(), "started_at": _now(), "rebuild_running_since": None, "last_error": None,
                        "rebuild_backoff_until": None, "files_waiting": {}, "watcher_restarts": 0}
        self.stop_note = "abandoned the rebuild in progress"  # said at a stop during a rebuild (_abandon_rebuild)
        self.board = StatusBoard(self.status_path(), s.home)  # status.snapshot() for an API; its file outlives a full disk

    # -- files ---------------------------------------------------------------------------
    def take_file(self, path: Path) -> float | None:
        """The watcher's handler, one file; the answer tells the watcher when to take it again (None: never)."""
        s = self.app.settings
        if s.shared:
            try:
                mine = self.app.coordination.claim_file(path.name, self.worker, s.claim_lease_s)
            except Exception as exc:  # noqa: BLE001 — the database is away: look again later
                log.warning("%s: cannot claim it now (%s)", path.name, transient_cause(exc) or exc)
                return self.backoff.delay(2)
            if not mine:
                return s.claim_lease_s  # another worker has it; if that worker dies, its claim expires and we take it
            self._claimed.add(path.name)
        try:
            return self._ingest_claimed(path)
        finally:
            if s.shared and not (path.exists() or path.is_symlink()):
                self._claimed.discard(path.name)
                try:
                    self.app.coordination.finish_claim(path.name, self.worker)
                except Exception as exc:  # noqa: BLE001 — an unfinished claim only expires
                    log.warning("%s: claim not closed (%s)", path.name, exc)

    def _ingest_claimed(self, path: Path) -> float | None:
        progress = _RowProgress(path.name, self.on_event)
        with self.app.write_lock:
            result = usecases.ingest_file(self.app, path, progress=progress, should_stop=self._stopping.is_set,
                                          settle_s=0.0 if handoff.handed_over(self.app.settings.home, path.name) else self.app.settings.settle_s,
                                          tries=self._files.get(path.name, {}).get("attempts", 0) + 1)
        self.on_event("ingest", result)
        verdict = self._verdict(path, result)
        if (verdict is None or result.state == "processed") and handoff.awaited(self.app.settings.home, handoff.INGEST, path.name):
            handoff.answer(self.app.settings.home, handoff.INGEST, path.name, asdict(result))
        if result.state in ("processed", "duplicate"):
            self._after_arrivals()
        return verdict

    def _verdict(self, path: Path, result: usecases.IngestResult) -> float | None:
        name = path.name
        if result.state == "interrupted":
            return None  # shutting down: the restart takes it
        if result.retry_in_s is not None:
            return result.retry_in_s  # written in place or not whole yet: looked at again then (sooner if it changes)
        still_here = path.exists() or path.is_symlink()
        if result.state != "retrying" and not still_here:
            self._files.pop(name, None)
            self._publish_files()
            return None
        entry = self._files.setdefault(name, {"attempts": 0})
        entry["attempts"] += 1
        reason = result.reason or f"{name}: could not be moved out of the inbox"
        self._error(reason)
        if not result.transient and entry["attempts"] >= PARK_AFTER:
            entry.update(state="parked", reason=f"{reason} — parked after {entry['attempts']} tries; it is taken again when the file changes or at restart")
            log.error("%s", entry["reason"])
            self._publish_files()
            if handoff.awaited(self.app.settings.home, handoff.INGEST, name):
                handoff.answer(self.app.settings.home, handoff.INGEST, name, {**asdict(result), "state": "parked", "reason": entry["reason"]})
            return math.inf
        delay = self.backoff.delay(entry["attempts"])
        entry.update(state="retrying", reason=reason, next_try_at=_now(delay))
        log.warning("%s (try %d; next in %.0fs)", reason, entry["attempts"], delay)
        self._publish_files()
        return delay

    def _after_arrivals(self) -> None:
        """A new story in the noise pool, a big pool, or a prediction state that is gone: rebuild now, not at the hour."""
        try:
            why, run_id = after_arrivals(self.app, lambda alert: self.on_event("alert", alert))
        except Exception as exc:  # noqa: BLE001 — a check that can wait for the scheduled rebuild
            log.warning("after-ingest check skipped (%s): %s", transient_cause(exc) or type(exc).__name__, exc)
            return
        if why:
            self.request_rebuild(why)
        if why == NEW_STORY:
            self.on_event("new_story", {"run": run_id})

    # -- rebuilds -------------------------------------------------------------------------
    def request_rebuild(self, why: str, by_user: bool = False) -> None:
        """Owed rebuilds are never dropped: one asked while a rebuild runs is run right after it."""
        with self._lock:
            self.plan, when = self.plan.asked(time.time(), by_user)
        if when is not None:
            log.info("rebuild asked: %s", why)
            self.schedule.run_at(when)

    def _rebuild_job(self) -> None:
        leading = self._lead()
        with self._lock:
            self.plan = self.plan.job_started(leading)
        if not leading:
            return
        try:
            first_pass = True
            while not self._stopping.is_set():
                tokens = handoff.rebuild_requests(self.app.settings.home)
                with self._lock:
                    self._taken = set(tokens)
                    self.plan, step = self.plan.decide(time.time(), bool(tokens), None if first_pass else False)
                if step == CHECK:
                    due = self._schedule_due()  # a database read: outside the lock the file handler waits on
                    with self._lock:
                        self.plan, step = self.plan.decide(time.time(), bool(tokens), due)
                if step == WAIT:
                    return
                first_pass = False
                self._run_rebuild(tokens, "asked" if step == ASKED else "scheduled")
        finally:
            with self._lock:
                self._taken = set()
                self.plan, when = self.plan.job_ended(time.time())
            if when is not None and not self._stopping.is_set():
                self.schedule.run_at(when)

    def _lead(self) -> bool:
        """With several workers, one process rebuilds at a time: the holder of the 'rebuild' lease."""
        s = self.app.settings
        if not s.shared:
            return True
        try:
            leader = self.app.coordination.take_lease("rebuild", self.worker, s.claim_lease_s)
        except Exception as exc:  # noqa: BLE001
            log.warning("rebuild lease not checked (%s): skipping this tick", transient_cause(exc) or exc)
            return False
        if leader and not self._leader:
            log.info("%s leads the rebuilds now", self.worker)
            self.app.runs.abandon_running_runs("its leader stopped")  # the lease says no other process is rebuilding
        self._leader = leader
        return leader

    def _heartbeat(self, stop: threading.Event) -> None:
        """Claims and the leader's lease stay ours while this process lives; a killed worker's lapse after claim_lease_s."""
        s = self.app.settings
        while not stop.wait(max(1.0, s.claim_lease_s / 3)):
            try:
                self.app.coordination.heartbeat(sorted(self._claimed), self.worker)
                if self._leader:
                    self._leader = self.app.coordination.take_lease("rebuild", self.worker, s.claim_lease_s)
            except Exception as exc:  # noqa: BLE001
                log.warning("heartbeat missed (%s)", transient_cause(exc) or exc)

    def _schedule_due(self) -> bool:
        try:
            return usecases.rebuild_due(self.app)
        except Exception as exc:  # noqa: BLE001 — the database is busy: the next tick asks again
            log.warning("scheduled rebuild skipped: %s", transient_cause(exc) or exc)
            return False

    def _run_rebuild(self, tokens: list[str], why: str) -> None:
        self.rebuilding.set()
        self._status["rebuild_running_since"] = _now()
        self.write_status()
        self.on_event("rebuild_started", {"why": why})
        outcome: dict
        try:
            with self.app.write_lock:
                result = usecases.rebuild(self.app, on_map_job=self.maps.submit)
        except Exception as exc:  # noqa: BLE001 — a failing rebuild backs off; the service goes on
            with self._lock:
                self.plan, delay = self.plan.rebuilt(time.time(), ok=False)  # owed again, after the backoff
            cause = transient_cause(exc) or f"{type(exc).__name__}: {exc}"
            reason = f"rebuild failed ({cause}); next try in {delay:.0f}s"
            log.error("%s", reason, exc_info=transient_cause(exc) is None)
            self._error(reason)
            self._status["rebuild_backoff_until"] = _now(delay)
            outcome = {"ok": False, "error": reason}
        else:
            with self._lock:
                self.plan, _ = self.plan.rebuilt(time.time(), ok=True)
            self._status["rebuild_backoff_until"] = None
            self.on_event("rebuild", result)
            if result.report_error:
                self._error(f"run {result.run_id}: report not written: {result.report_error}")
            outcome = {"ok": True, **asdict(result)}
        finally:
            self.rebuilding.clear()
            self._status["rebuild_running_since"] = None
            self.write_status()
        for token in tokens:
            handoff.answer(self.app.settings.home, handoff.REBUILD, token, outcome)
        if outcome["ok"]:  # after the answers: opening Lite takes the CPU for a second, which the waiting user should not pay
            # the rebuild let Milvus Lite go (App.set_store_aside): opened again now, not by the next file (1-1.5 s at 100k)
            self._in_background("vector store opened again", self._reopen_store, join_at_stop=True)

    def _reopen_store(self) -> None:
        with self.app.write_lock:
            if not self._stopping.is_set() and not self.plan.owed:  # another rebuild owed would let it go again
                self.app.open_store()

    def _in_background(self, what: str, fn, join_at_stop: bool = False) -> None:
        """Work a file would otherwise wait for, done beside it; a failure only means the file does it. join_at_stop:
        the stop waits for it (it opens what the stop closes)."""
        def run():
            t0 = time.perf_counter()
            try:
                fn()
                log.info("%s in %.1f s", what, time.perf_counter() - t0)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: not done in the background (%s: %s)", what, type(exc).__name__, exc)

        thread = threading.Thread(target=run, name=what, daemon=True)
        if join_at_stop:  # one per rebuild for weeks: the finished ones are let go
            self._joined_at_stop = [t for t in self._joined_at_stop if t.is_alive()] + [thread]
        thread.start()

    # -- status ---------------------------------------------------------------------------
    def _error(self, what: str) -> None:
        self._status["last_error"] = {"at": _now(), "what": self.board.disk_note(what)}

    def _publish_files(self) -> None:
        self._status["files_waiting"] = {k: dict(v) for k, v in self._files.items()}
        self.write_status()

    def write_status(self) -> None:
        """What only this process knows (retrying files, backoff, a rebuild in progress) for `newsclust status`."""
        self.board.publish(self._status)

    def status_path(self) -> Path:
        s = self.app.settings
        return status_file_path(s.state_dir, self.worker if s.shared else None)

    # -- life -----------------------------------------------------------------------------
    def _watch_requests(self, stop: threading.Event) -> None:
        """`newsclust rebuild` beside serve: a request file, looked for 20 times a second (a directory listing of a
        folder of a few files; the user waits for the look)."""
        while not stop.wait(0.05):
            if self.app.settings.shared and not self._leader:
                continue  # the leader answers: a follower's rebuild job would only take the lease row and log, 20 times a second
            try:
                tokens = handoff.rebuild_requests(self.app.settings.home)
                with self._lock:
                    fresh = [t for t in tokens if t not in self._taken]
                if fresh and not self.rebuilding.is_set():
                    # a user's request does not wait for the gap kept between early rebuilds
                    self.request_rebuild("asked by `newsclust rebuild`", by_user=True)
            except Exception:  # noqa: BLE001
                log.exception("request poller: going on")

    def open(self) -> None:
        """Load the model and open Milvus before taking files, so the first file is not slow and failures show at start."""
        self.app.open_store()
        if (index := self.app.open_neighbours()) is not None:  # read back or built beside the first files, not inside one
            self._in_background("live index ready", index.warm_up)
        if self.app.settings.api:
            from .api import ApiServer

            self.api = ApiServer(self.app, live_status=self.board.snapshot)
            self.api_url = self.api.start()
            self._status["api_url"] = self.api_url
            self.write_status()
        if self.role in ("all", "rebuild"):  # the process that raises alerts; ingest workers of a shared home would resend them
            self.app.resume_webhook()  # alerts left undelivered by the last stop are sent now
        if self.role in ("all", "rebuild"):
            try:
                if note := usecases.write_cut_off_page(self.app):
                    log.warning("%s", note)
            except Exception as exc:  # noqa: BLE001 — the next rebuild writes a page anyway
                log.warning("the latest run's missing page not written (%s: %s)", type(exc).__name__, exc)
            from service.clustering.warmup import warm_up

            log.info("rebuild code warmed up in %.1f s", warm_up())
            import service.report.page  # noqa: F401 — plotly's import, paid here and not by the first report (~2 s)

    def run(self, stop: threading.Event) -> None:
        self.write_status()
        if self.role in ("all", "ingest"):
            self.watcher.start()
        if self.role in ("all", "rebuild"):
            self.schedule.start()
            poller = threading.Thread(target=self._watch_requests, args=(stop,), daemon=True)
            poller.start()
        if self.app.settings.shared:
            threading.Thread(target=self._heartbeat, args=(stop,), name="heartbeat", daemon=True).start()
        if self.role == "rebuild" and (index := self.app.open_neighbours()) is not None:
            self._keeper = threading.Thread(target=self._keep_up, args=(stop, index), name="keep-up", daemon=True)
            self._keeper.start()
        try:
            while not stop.wait(1.0):
                self._supervise()
        finally:
            self._stopping.set()  # a file in progress stops at its next batch and stays in the inbox
            if self.role in ("all", "ingest"):
                self.watcher.stop(timeout=5)  # the current batch ends within that; a worker waiting on a rebuild is let go
            # a rebuild in progress is abandoned, not awaited (minutes at scale): it commits in one
            # transaction, so the previous clustering stays whole; its run is marked failed now, not at the next start
            if self.role in ("all", "rebuild"):
                self.schedule.stop(wait=False)
            for step in (self.maps.stop, lambda: self.api and self.api.stop(), self._join_background,
                         lambda: self._leader and self.app.coordination.release_lease("rebuild", self.worker),
                         self._abandon_rebuild,
                         lambda: self.status_path().unlink(missing_ok=True)):
                try:  # each step alone: the database being away at shutdown must not skip the others or hang the exit
                    step()
                except Exception as exc:  # noqa: BLE001
                    log.warning("at shutdown: %s", transient_cause(exc) or exc)

    def _keep_up(self, stop: threading.Event, index) -> None:
        """The leader's vector copy takes in what the ingest workers wrote, between rebuilds (vector_cache.keep_up)."""
        while not stop.wait(KEEP_UP_EVERY_S):
            if not self._leader or self.rebuilding.is_set() or not self.app.write_lock.acquire(blocking=False):
                continue
            try:
                index.keep_up()
            except Exception as exc:  # noqa: BLE001 — the rebuild catches up itself
                log.warning("vector copy not kept up (%s)", transient_cause(exc) or exc)
            finally:
                self.app.write_lock.release()

    def _join_background(self) -> None:
        if self._keeper is not None:  # a catch-up in progress ends before the copy is closed (a torn copy is refilled)
            self._keeper.join(timeout=60)
        for thread in self._joined_at_stop:
            thread.join(timeout=60)

    def _abandon_rebuild(self) -> None:
        if self.rebuilding.is_set():
            abandoned = self.app.runs.abandon_running_runs("stopped during the rebuild")
            latest = self.app.runs.latest_run()
            self.stop_note = run_state.stop_message(abandoned, latest.id if latest else None)

    def _supervise(self) -> None:
        if self.role == "rebuild" or self.watcher.alive():
            return
        log.error("the inbox worker stopped; starting it again")
        self.watcher.restart()
        self._status["watcher_restarts"] = self.watcher.restarts
        self.write_status()
        time.sleep(0.5)
        if not self.watcher.alive():
            raise WatcherDied("the inbox worker cannot be restarted")


class MapRefiner:
    """Refines each rebuild's map after its page is out: the layout (UMAP, 25-84 s under 10k documents on 2 busy
    cores) holds neither the write lock nor anyone's `rebuild` answer. Only the newest run's job waits: one
    submitted while a layout runs replaces any older waiting one (a newer quick map starts from the older run's
    positions anyway). A thread waits on a worker process at a lower priority that computes it: in a thread of
    serve, UMAP's compiled loops held the GIL and a rebuild beside it at 100k took twice as long per stage."""

    def __init__(self, app, on_event=None):
        self.app = app
        self.on_event = on_event or (lambda kind, payload: None)
        self._next = None
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pool = None  # the worker process, started with the first job
        self.busy = False

    def submit(self, job) -> None:
        with self._cond:
            self._next = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="map", daemon=True)
                self._thread.start()
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return self._next is None and not self.busy

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()  # a layout in progress is dropped: the page keeps its quick map
            pool.join()

    def _compute(self, fn, args, kwargs):
        with self._cond:
            if self._pool is None:
                import multiprocessing

                # spawn: a fresh interpreter that imports only the layout (no torch, no Milvus, no copy of our memory)
                self._pool = multiprocessing.get_context("spawn").Pool(1, initializer=_lower_priority)
            pool = self._pool
        return pool.apply(fn, args, kwargs)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._next is None and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job, self._next = self._next, None
                self.busy = True
            t0 = time.time()
            try:
                page = job.run(self.app, publish_lock=self.app.write_lock, compute=self._compute)
                self.on_event("map", {"run": job.run_id, "seconds": time.time() - t0, "page": str(page)})
            except Exception as exc:  # noqa: BLE001 — the quick map stays on the page; the next rebuild tries again
                log.warning("run %d: map not refined (%s: %s); its page keeps the quick map", job.run_id, type(exc).__name__, exc)
            finally:
                with self._cond:
                    self.busy = False


def _lower_priority() -> None:
    try:
        os.nice(10)
    except OSError:
        pass


class _RowProgress:
    """A line every 50,000 rows of a big file, so an operator sees it move; nothing for small files."""

    EVERY = 50_000

    def __init__(self, name: str, on_event):
        self.name, self.on_event, self.next = name, on_event, self.EVERY

    def __call__(self, stage: str, n: int) -> None:
        if n >= self.next:
            self.next = (n // self.EVERY + 1) * self.EVERY
            self.on_event("progress", {"file": self.name, "rows": n})


def _now(after_s: float = 0.0) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + after_s))


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
