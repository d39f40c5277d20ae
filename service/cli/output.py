"""What the commands print: results for people, and progress that never leaves a step silent for long."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from ..views import describe_alert

if TYPE_CHECKING:  # the use cases import the engine (about 1 s): commands import them when they need them
    from .. import usecases


def say(msg: str) -> None:
    typer.echo(msg, err=False)


def print_json(data) -> None:
    say(json.dumps(data, default=str, indent=1))


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def progress(label: str):
    """A live counter on a terminal; elsewhere (CI logs, pipes) a line after the first few seconds and then every
    8 s, so no step is silent for long (the first run compiles the clustering code: about a minute)."""
    if not _interactive():
        with Heartbeat(label) as beat:
            yield beat.update
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} {task.fields[stage]}"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None, stage="")
        yield lambda stage, n: bar.update(task, completed=n, stage=stage)


class Heartbeat:
    """`label: <stage> <n> (12s)` on standard output while a step runs past FIRST_S, then every EVERY_S."""

    FIRST_S, EVERY_S = 3.0, 8.0  # the first demo must never be silent for 10 s

    def __init__(self, label: str):
        self.label, self.stage, self.n = label, "", 0
        self._done = threading.Event()
        self._t0 = time.monotonic()

    def update(self, stage: str, n: int) -> None:
        self.stage, self.n = stage, n

    def _beat(self) -> None:
        wait = self.FIRST_S
        while not self._done.wait(wait):
            where = f": {self.n:,} {self.stage}" if self.stage else ""
            say(f"  ... {self.label}{where} ({time.monotonic() - self._t0:.0f}s)")
            sys.stdout.flush()
            wait = self.EVERY_S

    def __enter__(self):
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False


def warm_up_clustering() -> None:
    """Compile (first run) or load (later) the clustering code, saying so: numba compiles fast_hdbscan's steps on
    first use (86 s seen on 2 busy cores) and caches them on disk, so this is slow once per installation."""
    from ..clustering.warmup import warm_up

    with progress("loading the clustering code (compiled once per installation: a minute or two the first time)"):
        warm_up()


def print_recovered(left: dict) -> None:
    if any(left.values()):
        say(f"recovered after an interrupted run: {left['files']} file(s) to take again, {left['runs']} rebuild(s) marked failed")


def print_ingest(r: usecases.IngestResult) -> None:
    if r.state == "processed":
        say(f"{r.file}: {r.rows_seen} rows, {r.stored} stored, {r.updated} updated, {r.duplicates} already known, {r.rejected} rejected, "
            f"{r.predicted} placed by prediction  [{' '.join(f'{k} {v:.1f}s' for k, v in r.seconds.items())}]"
            + "".join(f"; {w}" for w in r.warnings))
    elif r.state == "duplicate":
        say(f"{r.file}: already ingested (same bytes) — nothing to do")
    elif r.state == "interrupted":
        say(f"{r.file}: interrupted by shutdown — left in the inbox for the restart")
    elif r.state == "gone":
        say(f"{r.file}: removed from the inbox before it was taken")
    elif r.state in ("waiting", "settled"):
        say(r.reason or f"{r.file}: {r.state}")
    elif r.state in ("retrying", "parked"):
        say(f"{r.file}: {r.state.upper()} — {r.reason}")
    else:
        say(f"{r.file}: FAILED — {r.reason}" + (f" -> {r.moved_to}" if r.moved_to else ""))


def print_rebuild(r: usecases.RebuildResult) -> None:
    ev = ", ".join(f"{v} {k}" for k, v in sorted(r.events.items())) or "no changes"
    say(f"rebuild run {r.run_id}: {r.documents} documents -> {r.stories} clusters, {r.noise} noise "
        f"(min_cluster_size {r.min_cluster_size}); events: {ev}")
    say("  stages: " + " ".join(f"{k} {v:.2f}s" for k, v in r.seconds.items()))
    if r.report:
        say(f"  report: {r.report}")
    if r.report_error:
        say(f"  report NOT written: {r.report_error}")
    for a in r.alerts:
        print_alert(a)


def print_alert(a: dict) -> None:
    say(f"  ALERT {describe_alert(a)}")


def print_event(kind: str, payload) -> None:
    """serve's events (workers/serve.py on_event), one line each."""
    if kind == "ingest":
        print_ingest(payload)
    elif kind == "rebuild":
        print_rebuild(payload)
    elif kind == "new_story":
        say(f"a new story in the noise pool after run {payload['run']}: rebuilding now")
    elif kind == "alert":
        print_alert(payload)
    elif kind == "rebuild_started":
        say(f"rebuild started ({payload['why']})")
    elif kind == "map":
        say(f"run {payload['run']}: map refined in {payload['seconds']:.1f}s, page published again")
    elif kind == "progress":
        say(f"{payload['file']}: {payload['rows']:,} rows read")
    else:
        say(f"{kind}: {payload}")
    sys.stdout.flush()
