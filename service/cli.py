"""The `newsclust` console script: thin commands over the use cases."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from . import usecases
from .config import describe_settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Incremental streaming clustering of news headlines.")


class Ctx:
    home: Optional[Path] = None


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def _say(msg: str) -> None:
    typer.echo(msg, err=False)


@app.callback()
def main(
    home: Optional[Path] = typer.Option(None, "--home", help="Service home (default: $NEWSCLUST_HOME, else ./newsclust-home)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the service does."),
    help_settings: bool = typer.Option(False, "--help-settings", help="List every setting with its default and exit."),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if help_settings:
        for name, default, help in describe_settings():
            _say(f"{name:22} {default!s:28} {help}  [env NEWSCLUST_{name.upper()}]")
        raise typer.Exit()
    Ctx.home = home


def _settings(**overrides):
    return load_settings(home=Ctx.home, **overrides)


def _build(**overrides):
    from .bootstrap import build_app

    return build_app(_settings(**overrides))


@contextmanager
def _writer(app_):
    """Take the home's writer lock, or say who holds it and stop."""
    from workers.lock import HomeLock

    lock = HomeLock(app_.settings.home)
    if not lock.acquire():
        raise _Busy(lock.holder())
    try:
        left = usecases.recover(app_)
        if any(left.values()):
            _say(f"recovered after an interrupted run: {left['files']} file(s) to take again, {left['runs']} rebuild(s) marked failed")
        yield
    finally:
        lock.release()


class _Busy(Exception):
    pass


@contextmanager
def _progress(label: str):
    """A live counter on a terminal; silent in CI logs and pipes."""
    if not _interactive():
        yield lambda stage, n: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} {task.fields[stage]}"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None, stage="")
        yield lambda stage, n: bar.update(task, completed=n, stage=stage)


def _print_ingest(r: usecases.IngestResult) -> None:
    if r.state == "processed":
        _say(f"{r.file}: {r.rows_seen} rows, {r.stored} stored, {r.duplicates} already known, {r.rejected} rejected, "
             f"{r.predicted} placed by prediction  [{' '.join(f'{k} {v:.1f}s' for k, v in r.seconds.items())}]")
    elif r.state == "duplicate":
        _say(f"{r.file}: already ingested (same bytes) — nothing to do")
    elif r.state == "interrupted":
        _say(f"{r.file}: interrupted by shutdown — left in the inbox for the restart")
    else:
        _say(f"{r.file}: FAILED — {r.reason} -> {r.moved_to}")


def _print_rebuild(r: usecases.RebuildResult) -> None:
    ev = ", ".join(f"{v} {k}" for k, v in sorted(r.events.items())) or "no changes"
    _say(f"rebuild run {r.run_id}: {r.documents} documents -> {r.clusters} clusters, {r.noise} noise "
         f"(min_cluster_size {r.min_cluster_size}); events: {ev}")
    _say("  stages: " + " ".join(f"{k} {v:.2f}s" for k, v in r.seconds.items()))
    if r.report:
        _say(f"  report: {r.report}")


@app.command()
def ingest(files: list[Path] = typer.Argument(..., help="CSV files to ingest (the same path as the watcher's).")):
    """Ingest the given files once. While `serve` runs, they are handed to its inbox instead."""
    a = _build()
    try:
        with _writer(a):
            failed = 0
            for f in files:
                with _progress(f"ingesting {f.name}") as progress:
                    r = _ingest_copy(a, f, progress)
                _print_ingest(r)
                failed += r.state == "failed"
    except _Busy as busy:
        for f in files:
            shutil.copy2(f, a.settings.inbox / (f.name + ".part"))
            os.replace(a.settings.inbox / (f.name + ".part"), a.settings.inbox / f.name)
        _say(f"another newsclust process (pid {busy}) owns this home: handed {len(files)} file(s) to its inbox")
        return
    finally:
        a.close()
    raise typer.Exit(1 if failed else 0)


def _ingest_copy(a, f: Path, progress) -> usecases.IngestResult:
    """The user's file stays where it is: a copy goes through the inbox path (processed/ or failed/)."""
    if f.parent.resolve() == a.settings.inbox.resolve():
        return usecases.ingest_file(a, f, progress)
    if not f.exists():
        return usecases.IngestResult(file=f.name, state="failed", reason=f"{f}: no such file")
    staged = a.settings.inbox / f.name
    if f.is_dir():
        return usecases.IngestResult(file=f.name, state="failed", reason=f"{f}: a directory, not a CSV file")
    shutil.copy2(f, staged)
    return usecases.ingest_file(a, staged, progress)


@app.command()
def rebuild():
    """Rebuild the clustering now and write the report."""
    a = _build()
    try:
        with _writer(a):
            with _progress("rebuilding") as progress:
                r = usecases.rebuild(a, progress=progress)
            _print_rebuild(r)
    except _Busy as busy:
        (a.settings.home / "rebuild.request").touch()
        _say(f"another newsclust process (pid {busy}) owns this home: asked it to rebuild")
    finally:
        a.close()


@app.command()
def report(out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of HOME/reports/."),
           run: Optional[int] = typer.Option(None, "--run", help="Render a past run.")):
    """Write the HTML report of the latest (or a given) run."""
    a = _build()
    try:
        path = usecases.write_report(a, run, out)
    except LookupError as exc:
        _say(str(exc))
        raise typer.Exit(1)
    finally:
        a.close()
    _say(str(path))


@app.command()
def export(out: Optional[Path] = typer.Option(None, "--out", help="CSV file to write (default: standard output).")):
    """CSV, one row per document: guid,cluster_id,probability,outlier_score,assigned_by,run_id (noise: cluster_id -1)."""
    a = _build()
    try:
        if out:
            tmp = out.with_name(out.name + ".tmp")
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                n = usecases.export_csv(a, fh)
            os.replace(tmp, out)
            _say(f"{n} documents -> {out}")
        else:
            usecases.export_csv(a, sys.stdout)
    finally:
        a.close()


@app.command()
def status():
    """Counts of documents, clusters, pending arrivals, last rebuild, inbox backlog."""
    a = _build()
    try:
        for k, v in usecases.status(a).items():
            _say(f"{k:18} {v}")
    finally:
        a.close()


@app.command()
def serve():
    """Watch the inbox and rebuild on schedule until SIGINT/SIGTERM."""
    from workers.serve import Service, install_signal_handlers

    a = _build()
    try:
        with _writer(a):
            stop = threading.Event()
            install_signal_handlers(stop)

            def on_event(kind, payload):
                (_print_ingest if kind == "ingest" else _print_rebuild)(payload)
                sys.stdout.flush()

            service = Service(a, on_event)
            service.open()
            _say(f"serving {a.settings.home}: inbox {a.settings.inbox}, rebuild every {a.settings.rebuild_interval_s}s")
            sys.stdout.flush()
            service.run(stop)
            if service.rebuilding.is_set():
                _say("stopped; abandoned the rebuild in progress (the previous clustering stays; the next start marks it failed)")
                sys.stdout.flush()
                os._exit(0)  # the rebuild thread cannot be interrupted; the OS drops the writer lock
            _say("stopped")
    except _Busy as busy:
        _say(f"another newsclust process (pid {busy}) already serves this home")
        raise typer.Exit(1)
    finally:
        a.close()


@app.command()
def demo(
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Stream this CSV in time order (one file per day) instead of the generated stories."),
    days: int = typer.Option(10, help="Simulated days of the generated stream."),
    seed: int = typer.Option(1, help="Seed of the generated stream."),
    rebuild_every: int = typer.Option(1, help="Rebuild after every N days (arrivals in between are placed by prediction)."),
):
    """Feed a news stream through the inbox day by day, rebuilding as `serve` would, and end with a report."""
    from .demo import generate, split_csv_by_day

    a = _build()
    try:
        with _writer(a):
            staging = a.settings.home / "demo-stream"
            shutil.rmtree(staging, ignore_errors=True)
            t0 = time.perf_counter()
            files = split_csv_by_day(csv_file, staging) if csv_file else generate(staging, days=days, seed=seed)
            _say(f"{'split ' + str(csv_file) if csv_file else 'generated a stream of'} {len(files)} day files in {time.perf_counter() - t0:.1f}s"
                 + ("" if csv_file else f" (true stories in {staging / 'truth'})"))
            result = None
            for i, f in enumerate(files, 1):
                target = a.settings.inbox / f.name
                shutil.copy2(f, target)
                with _progress(f"day {i}/{len(files)}") as progress:
                    r = usecases.ingest_file(a, target, progress)
                _print_ingest(r)
                if i % rebuild_every == 0 or i == len(files):
                    result = usecases.rebuild(a, write_report_after=(i == len(files)))
                    _print_rebuild(result)
            if result and result.report:
                _say(f"open {a.settings.reports_dir / 'latest.html'} in a browser")
    except _Busy as busy:
        _say(f"another newsclust process (pid {busy}) owns this home; stop it or use another --home")
        raise typer.Exit(1)
    finally:
        a.close()


if __name__ == "__main__":
    app()
