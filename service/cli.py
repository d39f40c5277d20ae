"""The `newsclust` console script: thin commands over the use cases."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from .config import describe_settings, load_settings

if TYPE_CHECKING:  # the use cases import the engine (about 1 s): commands import them when they need them
    from . import usecases

# plain help (rich_markup_mode=None): typer's rich panels showed every flag as `--json <bool>`, which reads as if
# `--json true` were accepted (it is not: --json is a flag)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Incremental streaming clustering of news headlines.")


class Ctx:
    home: Optional[Path] = None


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def _say(msg: str) -> None:
    typer.echo(msg, err=False)


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    home: Optional[Path] = typer.Option(None, "--home", help="Service home (default: $NEWSCLUST_HOME, else ./newsclust-home); before or after the command."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the service does."),
    help_settings: bool = typer.Option(False, "--help-settings", help="List every setting with its default and exit."),
):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if help_settings:
        for name, default, help in describe_settings():
            _say(f"{name:22} {default!s:28} {help}  [env NEWSCLUST_{name.upper()}]")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        _say(ctx.get_help())
        raise typer.Exit()
    Ctx.home = home


GLOBAL_OPTIONS = {"--home": True, "--verbose": False, "-v": False, "--help-settings": False}


def hoist_global_options(argv: list[str]) -> list[str]:
    """`newsclust status --home H` means `newsclust --home H status`: global options may follow the command."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            takes_value = GLOBAL_OPTIONS[name] and "=" not in arg
            front.extend(argv[i : i + (2 if takes_value else 1)])
            i += 2 if takes_value else 1
            continue
        if arg == "--":
            rest.extend(argv[i:])
            break
        rest.append(arg)
        i += 1
    return front + rest


def run() -> None:
    """The console script's entry point: a setting that cannot be used is one line and exit status 2, not a traceback."""
    from .faults import BrokenStore
    from .config import SettingsError

    try:
        app(args=hoist_global_options(sys.argv[1:]), prog_name="newsclust")
    except SettingsError as exc:
        typer.echo(f"newsclust: {exc}", err=True)
        sys.exit(2)
    except BrokenStore as exc:  # a damaged database or vector store, a home we cannot write: one line, nothing changed
        typer.echo(f"newsclust: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 — our environment failing is a message and a retry, not a traceback
        from .faults import transient_cause

        cause = transient_cause(exc)
        if cause is None:
            raise
        typer.echo(f"newsclust: {cause}; nothing was changed, try again shortly", err=True)
        sys.exit(75)  # EX_TEMPFAIL


def _settings(**overrides):
    return load_settings(home=Ctx.home, **overrides)


@contextmanager
def _opened(**overrides):
    """The App of this home for one command, closed whatever happens."""
    from .bootstrap import App

    a = App(_settings(**overrides))
    try:
        yield a
    finally:
        a.close()


@contextmanager
def _writer(app_, worker: bool = False):
    """Take the home's writer lock, or say who holds it and stop. A shared home (PostgreSQL + a Milvus server)
    has no lock: its serve workers arbitrate through the database, and one-off commands hand their work to them."""
    from workers.lock import HomeLock

    if app_.settings.shared:
        if not worker:
            raise _Busy("the workers of this shared home")
        yield
        return
    lock = HomeLock(app_.settings.home)
    if not lock.acquire():
        raise _Busy(lock.holder())
    try:
        from . import usecases

        left = usecases.recover(app_)
        if any(left.values()):
            _say(f"recovered after an interrupted run: {left['files']} file(s) to take again, {left['runs']} rebuild(s) marked failed")
        yield
    finally:
        lock.release()


class _Busy(Exception):
    pass


def _who(busy: _Busy) -> str:
    holder = str(busy)
    return f"pid {holder}" if holder.isdigit() or holder == "?" else holder


@contextmanager
def _progress(label: str):
    """A live counter on a terminal; elsewhere (CI logs, pipes) a line after the first few seconds and then every
    8 s, so no step is silent for long (the first run compiles the clustering code: about a minute)."""
    if not _interactive():
        with _Heartbeat(label) as beat:
            yield beat.update
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} {task.fields[stage]}"),
                  TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task(label, total=None, stage="")
        yield lambda stage, n: bar.update(task, completed=n, stage=stage)


class _Heartbeat:
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
            _say(f"  ... {self.label}{where} ({time.monotonic() - self._t0:.0f}s)")
            sys.stdout.flush()
            wait = self.EVERY_S

    def __enter__(self):
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False


def _warm_up_clustering() -> None:
    """Compile (first run) or load (later) the clustering code, saying so: numba compiles fast_hdbscan's steps on
    first use (86 s seen on 2 busy cores) and caches them on disk, so this is slow once per installation."""
    from .clustering.warmup import warm_up

    with _progress("loading the clustering code (compiled once per installation: a minute or two the first time)"):
        warm_up()


def _print_ingest(r: usecases.IngestResult) -> None:
    if r.state == "processed":
        _say(f"{r.file}: {r.rows_seen} rows, {r.stored} stored, {r.updated} updated, {r.duplicates} already known, {r.rejected} rejected, "
             f"{r.predicted} placed by prediction  [{' '.join(f'{k} {v:.1f}s' for k, v in r.seconds.items())}]"
             + "".join(f"; {w}" for w in r.warnings))
    elif r.state == "duplicate":
        _say(f"{r.file}: already ingested (same bytes) — nothing to do")
    elif r.state == "interrupted":
        _say(f"{r.file}: interrupted by shutdown — left in the inbox for the restart")
    elif r.state == "gone":
        _say(f"{r.file}: removed from the inbox before it was taken")
    elif r.state in ("waiting", "settled"):
        _say(r.reason or f"{r.file}: {r.state}")
    elif r.state in ("retrying", "parked"):
        _say(f"{r.file}: {r.state.upper()} — {r.reason}")
    else:
        _say(f"{r.file}: FAILED — {r.reason}" + (f" -> {r.moved_to}" if r.moved_to else ""))


def _print_rebuild(r: usecases.RebuildResult) -> None:
    ev = ", ".join(f"{v} {k}" for k, v in sorted(r.events.items())) or "no changes"
    _say(f"rebuild run {r.run_id}: {r.documents} documents -> {r.stories} clusters, {r.noise} noise "
         f"(min_cluster_size {r.min_cluster_size}); events: {ev}")
    _say("  stages: " + " ".join(f"{k} {v:.2f}s" for k, v in r.seconds.items()))
    if r.report:
        _say(f"  report: {r.report}")
    if r.report_error:
        _say(f"  report NOT written: {r.report_error}")
    for a in r.alerts:
        _print_alert(a)


def _print_alert(a: dict) -> None:
    from .adapters.notify import describe

    _say(f"  ALERT {describe(a)}")


def _print_event(kind: str, payload) -> None:
    if kind == "ingest":
        _print_ingest(payload)
    elif kind == "rebuild":
        _print_rebuild(payload)
    elif kind == "new_story":
        _say(f"a new story in the noise pool after run {payload['run']}: rebuilding now")
    elif kind == "alert":
        _print_alert(payload)
    elif kind == "rebuild_started":
        _say(f"rebuild started ({payload['why']})")
    elif kind == "map":
        _say(f"run {payload['run']}: map refined in {payload['seconds']:.1f}s, page published again")
    elif kind == "progress":
        _say(f"{payload['file']}: {payload['rows']:,} rows read")
    else:
        _say(f"{kind}: {payload}")
    sys.stdout.flush()


def _serving_pid(home: Path) -> int | None:
    """The pid of the process serving this home, if one is alive (a shared home's workers are not tracked: -1)."""
    from workers.lock import HomeLock

    settings = _settings()
    if settings.shared:  # workers are not tracked by a lock: any live worker status file counts
        from .state import status_path

        return -1 if any(settings.state_dir.glob(status_path(settings.state_dir, "*").name)) else None

    holder = HomeLock(home).holder()
    try:
        pid = int(holder)
        os.kill(pid, 0)
        return pid
    except (ValueError, OSError):
        return None


@app.command()
def ingest(files: list[Path] = typer.Argument(..., help="CSV files to ingest (the same path as the watcher's)."),
           no_wait: bool = typer.Option(False, "--no-wait", help="Beside a running serve: hand the files over and return at once.")):
    """Ingest the given files once. While `serve` runs, they are handed to its inbox, and the outcome is awaited."""
    from . import handoff

    from . import usecases

    failed = 0
    with _opened() as a:
        try:
            with _writer(a):
                for f in files:
                    with _progress(f"ingesting {f.name}") as progress:
                        r = usecases.ingest_copy(a, f, progress)
                    _print_ingest(r)
                    failed += r.state not in ("processed", "duplicate")
        except _Busy as busy:
            home = a.settings.home
            handed = []
            for f in files:
                if not f.is_file():
                    _say(f"{f.name}: FAILED — {f}: {'a directory, not a CSV file' if f.is_dir() else 'no such file'}")
                    failed += 1
                    continue
                handed.append((f, handoff.hand_over(home, a.settings.inbox, f, wait=not no_wait)))
            _say(f"another newsclust process ({_who(busy)}) owns this home: handed {len(handed)} file(s) to its inbox"
                 + ("" if no_wait else "; waiting for the outcome (--no-wait returns at once)"))
            if not no_wait:
                for f, name in handed:
                    outcome = handoff.await_answer(home, handoff.INGEST, name, lambda: _serving_pid(home) is not None)
                    if outcome is None:
                        _say(f"{name}: the serving process stopped before answering; the file is in its inbox")
                        failed += 1
                        continue
                    r = usecases.IngestResult(**outcome)
                    _print_ingest(r)
                    failed += r.state not in ("processed", "duplicate")
    raise typer.Exit(1 if failed else 0)


@app.command()
def rebuild(no_wait: bool = typer.Option(False, "--no-wait", help="Beside a running serve: ask for the rebuild and return at once.")):
    """Rebuild the clustering now and write the report (beside a running serve: ask it, and wait for the outcome).
    The page is published with a quick map first; the refined map follows (here after the answer, in serve behind it)."""
    if _api() is not None:  # serve runs: ask it at once, without opening the home (about a second of imports)
        _ask_serve_to_rebuild(_settings().home, "newsclust serve", no_wait)
        return
    from . import usecases

    with _opened() as a:
        try:
            with _writer(a):
                maps: list = []
                _warm_up_clustering()
                with _progress("rebuilding") as progress:
                    r = usecases.rebuild(a, progress=progress, on_map_job=maps.append)
                _print_rebuild(r)
                for job in maps:  # the answer is out; the refined map follows, and the page is published again
                    _say(f"  refining the map of {len(job.doc_ids):,} documents (the page above shows them placed already; "
                         "Ctrl-C keeps it as it is)")
                    sys.stdout.flush()
                    t0 = time.perf_counter()
                    job.run(a)
                    _say(f"  map refined in {time.perf_counter() - t0:.1f}s; page published again")
        except _Busy as busy:
            _ask_serve_to_rebuild(a.settings.home, f"another newsclust process ({_who(busy)})", no_wait)


def _ask_serve_to_rebuild(home: Path, who: str, no_wait: bool) -> None:
    from types import SimpleNamespace

    from . import handoff

    token = handoff.ask_rebuild(home, wait=not no_wait)
    _say(f"{who} owns this home: asked it to rebuild" + ("" if no_wait else "; waiting for it"))
    if no_wait:
        return
    sys.stdout.flush()
    outcome = handoff.await_answer(home, handoff.REBUILD, token, lambda: _serving_pid(home) is not None, poll_s=0.1)
    if outcome is None:
        _say("the serving process stopped before answering")
        raise typer.Exit(1)
    if not outcome.pop("ok"):
        _say(outcome["error"])
        raise typer.Exit(1)
    _print_rebuild(SimpleNamespace(**outcome))


@app.command()
def report(out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of HOME/reports/."),
           run: Optional[int] = typer.Option(None, "--run", help="Render a past run."),
           standalone: bool = typer.Option(False, "--standalone", help="One self-contained file (plotly.js inline, about 4.6 MB more) to mail or share.")):
    """Write the HTML report of the latest (or a given) run."""
    from . import usecases

    _existing_home()
    with _opened() as a:
        try:
            path = usecases.write_report(a, run, out, standalone=standalone)
        except LookupError as exc:
            _say(str(exc))
            raise typer.Exit(1)
    _say(str(path))


@app.command()
def export(out: Optional[Path] = typer.Option(None, "--out", help="CSV file to write (default: standard output); a missing folder is made.")):
    """CSV, one row per document (noise: -1 at either level; cluster_id repeats story_id; a title is cut to its
    first 1,000 characters). Its columns:

    \b
    guid,title,story_id,story_name,topic_id,topic_name,probability,outlier_score,assigned_by,run_id,cluster_id
    """
    from . import usecases

    _existing_home()
    with _opened() as a:
        if out:
            _say(f"{usecases.export_csv_file(a, out)} documents -> {out}")
        else:
            usecases.export_csv(a, sys.stdout)


def _existing_home() -> Path:
    """A read of a home that does not exist is an error (exit 2) that creates nothing, not an empty home and zeros."""
    s = _settings()
    home = s.home
    if not home.is_dir() and not s.database_url:  # a shared home's history lives in its database server
        typer.echo(f"newsclust: no home at {home} (`newsclust serve`, `ingest` or `demo` make one; --home or NEWSCLUST_HOME "
                   "chooses which)", err=True)
        raise typer.Exit(2)
    return home


def _api():
    """The running serve's query API for this home (workers/api.py), or None: then the command reads directly."""
    from .api_client import find_api

    s = _settings()
    return find_api(s.home, s.api_token)


def _ask_api(path: str, **params) -> dict | None:
    """serve's answer (printing its error and exiting on a 4xx), or None when no serve answers: read directly."""
    from .api_client import ApiUnavailable

    client = _api()
    if client is None:
        return None
    try:
        code, body = client.get(path, **params)
    except ApiUnavailable:
        return None  # it stopped meanwhile: the home is ours to read
    if code >= 400:
        _say(body.get("error") or f"HTTP {code}")
        raise typer.Exit(1)
    return body


def _print_json(data) -> None:
    _say(json.dumps(data, default=str, indent=1))


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="One JSON object, for machines (api_url: where serve answers queries).")):
    """Documents, stories, topics, backlog, rebuild in progress, last error, files waiting to be retried and why."""
    from .views import format_status

    _existing_home()
    st = _ask_api("/status")
    if st is None:
        from . import usecases

        with _opened() as a:
            st = usecases.status(a, serving_pid=_serving_pid(a.settings.home))
    if as_json:
        _print_json(st)
        return
    _say(format_status(st))


@app.command()
def search(query: str = typer.Argument(..., help="Text to look for (a headline, a few words)."),
           k: int = typer.Option(10, "--k", min=1, max=1000, help="How many headlines."),
           as_json: bool = typer.Option(False, "--json", help="JSON, for machines.")):
    """The nearest headlines to a text, with similarity, time, story and topic. Beside a running serve, serve answers
    (it holds the model); otherwise this process loads the model (seconds)."""
    from .views import format_hits

    _existing_home()
    answer = _ask_api("/search", q=query, k=k)
    if answer is not None:
        hits = answer["hits"]
    else:
        from . import usecases

        # a shared home's workers each own a vector copy: search must not open (and trim) one of theirs
        with _opened(**({"vector_cache": False} if _settings().shared else {})) as a:
            try:
                hits = usecases.search(a, query, k, serving=_serving_pid(a.settings.home) is not None)
            except LookupError as exc:
                _say(str(exc))
                raise typer.Exit(1)
    if as_json:
        _print_json(hits)
        return
    _say(format_hits(hits))


def _detail(kind: str, key: int, as_json: bool) -> dict | None:
    """Shared by `story` and `topic`: ask serve or read, say when it does not exist, or print it as JSON; None once handled."""
    _existing_home()
    detail = _ask_api(f"/{'stories' if kind == 'story' else 'topics'}/{key}")
    if detail is None:
        from . import usecases

        with _opened() as a:
            detail = (usecases.story_detail if kind == "story" else usecases.topic_detail)(a, key)
    if detail is None:
        _say(f"no {kind} {key}")
        raise typer.Exit(1)
    if as_json:
        _print_json(detail)
        return None
    return detail


STORY_HEADLINES = 20


@app.command()
def story(story_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="JSON, for machines (every headline)."),
          headlines: int = typer.Option(STORY_HEADLINES, "--headlines", "-n", min=0, help="How many of its headlines to print, core first."),
          show_all: bool = typer.Option(False, "--all", help="Print every headline.")):
    """A story: its title, keywords, topic, size per run, lineage, and its headlines core first (the newest beside)."""
    from .views import format_story

    detail = _detail("story", story_id, as_json)
    if detail is None:
        return
    _say(format_story(detail, None if show_all else headlines))


@app.command()
def topic(topic_id: int = typer.Argument(...), as_json: bool = typer.Option(False, "--json", help="JSON, for machines.")):
    """A topic: its name, keywords, size per run, and its stories."""
    from .views import format_topic

    detail = _detail("topic", topic_id, as_json)
    if detail is None:
        return
    _say(format_topic(detail))


@app.command()
def serve(role: str = typer.Option("all", "--role", help="all (default), ingest (take inbox files only) or rebuild (the schedule "
                                                         "only). Several workers need PostgreSQL and a Milvus server.")):
    """Watch the inbox and rebuild on schedule until SIGINT/SIGTERM."""
    from workers.serve import Service, WatcherDied, install_signal_handlers

    if role not in ("all", "ingest", "rebuild"):
        _say(f"--role {role!r}: one of all, ingest, rebuild")
        raise typer.Exit(2)
    settings = _settings()
    # an ingest-only worker of a shared home searches the Milvus server for placing arrivals; no local copy to keep
    with _opened(**({"vector_cache": False} if settings.shared and role == "ingest" else {})) as a:
        if role != "all" and not a.settings.shared:
            _say("--role ingest/rebuild needs a home several processes can write: database_url = postgresql+psycopg://... and a Milvus server")
            raise typer.Exit(2)
        try:
            with _writer(a, worker=True):
                stop = threading.Event()
                install_signal_handlers(stop)

                service = Service(a, _print_event, role=role)
                with _progress("loading the model and the clustering code (the first start compiles it: a minute or two)"):
                    service.open()
                who = f" as worker {a.settings.resolved_worker_name} ({role})" if a.settings.shared else ""
                api = f"; queries at {service.api_url}" if service.api_url else ""
                _say(f"serving {a.settings.home}{who}: inbox {a.settings.inbox}, rebuild every {a.settings.rebuild_interval_s}s{api}")
                sys.stdout.flush()
                try:
                    service.run(stop)
                except WatcherDied as exc:
                    _say(f"stopping: {exc}; a supervisor should start serve again")
                    sys.stdout.flush()
                    os._exit(3)
                if service.rebuilding.is_set():
                    _say(f"stopped; {service.stop_note}")
                    sys.stdout.flush()
                    os._exit(0)  # the rebuild thread cannot be interrupted; the OS drops the writer lock
                _say("stopped")
        except _Busy as busy:
            _say(f"another newsclust process (pid {busy}) already serves this home")
            raise typer.Exit(1)


@app.command()
def demo(
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Stream this CSV in time order (one file per day) instead of the generated stories."),
    days: int = typer.Option(10, help="Simulated days of the generated stream."),
    seed: int = typer.Option(1, help="Seed of the generated stream."),
    rebuild_every: int = typer.Option(1, help="Rebuild after every N days (arrivals in between are placed by prediction)."),
):
    """Feed a news stream through the inbox day by day, rebuilding as `serve` would, and end with a report."""
    from .demo import replay, stage

    with _opened() as a:
        try:
            with _writer(a):
                known = a.stories.status().documents
                if known:
                    _say(f"this home already holds {known:,} documents: a stream it has seen changes nothing, so the rebuilds "
                         "below may be no-ops; for a fresh demo use a new home (--home some-new-folder)")
                _warm_up_clustering()
                t0 = time.perf_counter()
                staging, files = stage(a.settings.home, csv_file, days, seed)
                _say(f"{'split ' + str(csv_file) if csv_file else 'generated a stream of'} {len(files)} day files in {time.perf_counter() - t0:.1f}s"
                     + ("" if csv_file else f" (true stories in {staging / 'truth'})"))
                maps: list = []
                result, alerts = replay(a, files, rebuild_every, _progress, _print_ingest, _print_rebuild, maps.append)
                for job in maps:  # the page is out with a quick map; the refined one follows
                    with _progress(f"refining the map of {len(job.doc_ids):,} documents (the page is written already)"):
                        job.run(a)
                # each alert was printed once, under the rebuild that raised it
                _say(f"alerts raised: {len(alerts)} (feed: {a.settings.reports_dir / 'alerts.xml'})" if alerts else "alerts raised: none")
                if result and result.report:
                    _say(f"open {a.settings.reports_dir / 'latest.html'} in a browser")
        except _Busy as busy:
            _say(f"another newsclust process (pid {busy}) owns this home; stop it or use another --home")
            raise typer.Exit(1)


if __name__ == "__main__":
    run()
