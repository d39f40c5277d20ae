"""Commands that write the home: ingest, rebuild, demo. Each takes the home's writer lock (handoff.writer), or, where
another process holds it, hands its work to that process and waits for the answer (handoff.py has the protocol)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import typer

from .. import handoff
from .app import Invocation, app, here
from .output import print_ingest, print_rebuild, print_recovered, progress, say, warm_up_clustering

ANSWERED = ("processed", "duplicate")  # the ingest outcomes that are no failure


@app.command()
def ingest(ctx: typer.Context,
           files: list[Path] = typer.Argument(..., help="CSV files to ingest (the same path as the watcher's)."),
           no_wait: bool = typer.Option(False, "--no-wait", help="Beside a running serve: hand the files over and return at once.")):
    """Ingest the given files once. While `serve` runs, they are handed to its inbox, and the outcome is awaited."""
    from .. import usecases

    failed = 0
    with here(ctx).opened() as a:
        try:
            with handoff.writer(a) as recovered:
                print_recovered(recovered)
                for f in files:
                    with progress(f"ingesting {f.name}") as bar:
                        r = usecases.ingest_copy(a, f, bar)
                    print_ingest(r)
                    failed += r.state not in ANSWERED
        except handoff.Busy as busy:
            failed += _hand_over(a.settings, files, busy, no_wait)
    raise typer.Exit(1 if failed else 0)


def _hand_over(settings, files: list[Path], busy: handoff.Busy, no_wait: bool) -> int:
    """The files go to the writer's inbox; with waiting, each outcome is printed as it comes. Returns the failures."""
    from .. import usecases

    failed = 0
    handed = handoff.hand_over_files(settings.home, settings.inbox, files, wait=not no_wait)
    for f, name in handed:
        if name is None:
            say(f"{f.name}: FAILED — {handoff.not_a_file(f)}")
            failed += 1
    names = [name for _, name in handed if name is not None]
    say(f"another newsclust process ({busy.who()}) owns this home: handed {len(names)} file(s) to its inbox"
        + ("" if no_wait else "; waiting for the outcome (--no-wait returns at once)"))
    if no_wait:
        return failed
    for name in names:
        outcome = handoff.answer_from_server(settings, handoff.INGEST, name)
        if outcome is None:
            say(f"{name}: the serving process stopped before answering; the file is in its inbox")
            failed += 1
            continue
        r = usecases.IngestResult(**outcome)
        print_ingest(r)
        failed += r.state not in ANSWERED
    return failed


@app.command()
def rebuild(ctx: typer.Context,
            no_wait: bool = typer.Option(False, "--no-wait", help="Beside a running serve: ask for the rebuild and return at once.")):
    """Rebuild the clustering now and write the report (beside a running serve: ask it, and wait for the outcome).
    The page is published with a quick map first; the refined map follows (here after the answer, in serve behind it)."""
    inv = here(ctx)
    if inv.api() is not None:  # serve runs: ask it at once, without opening the home (about a second of imports)
        _ask_to_rebuild(inv, "newsclust serve", no_wait)
        return
    from .. import usecases

    with inv.opened() as a:
        try:
            with handoff.writer(a) as recovered:
                print_recovered(recovered)
                maps: list = []
                warm_up_clustering()
                with progress("rebuilding") as bar:
                    r = usecases.rebuild(a, progress=bar, on_map_job=maps.append)
                print_rebuild(r)
                for job in maps:  # the answer is out; the refined map follows, and the page is published again
                    say(f"  refining the map of {len(job.doc_ids):,} documents (the page above shows them placed already; "
                        "Ctrl-C keeps it as it is)")
                    sys.stdout.flush()
                    t0 = time.perf_counter()
                    job.run(a)
                    say(f"  map refined in {time.perf_counter() - t0:.1f}s; page published again")
        except handoff.Busy as busy:
            _ask_to_rebuild(inv, f"another newsclust process ({busy.who()})", no_wait)


def _ask_to_rebuild(inv: Invocation, who: str, no_wait: bool) -> None:
    settings = inv.settings()
    token = handoff.ask_rebuild(settings.home, wait=not no_wait)
    say(f"{who} owns this home: asked it to rebuild" + ("" if no_wait else "; waiting for it"))
    if no_wait:
        return
    sys.stdout.flush()
    outcome = handoff.answer_from_server(settings, handoff.REBUILD, token, poll_s=0.05)  # the answer is awaited: looked for often
    if outcome is None:
        say("the serving process stopped before answering")
        raise typer.Exit(1)
    if not outcome.pop("ok"):
        say(outcome["error"])
        raise typer.Exit(1)
    print_rebuild(SimpleNamespace(**outcome))


@app.command()
def demo(
    ctx: typer.Context,
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="Stream this CSV in time order (one file per day) instead of the generated stories."),
    days: int = typer.Option(10, help="Simulated days of the generated stream."),
    seed: int = typer.Option(1, help="Seed of the generated stream."),
    rebuild_every: int = typer.Option(1, help="Rebuild after every N days (arrivals in between are placed by prediction)."),
):
    """Feed a news stream through the inbox day by day, rebuilding as `serve` would, and end with a report."""
    from ..demo import replay, stage

    with here(ctx).opened() as a:
        try:
            with handoff.writer(a) as recovered:
                print_recovered(recovered)
                known = a.stories.status().documents
                if known:
                    say(f"this home already holds {known:,} documents: a stream it has seen changes nothing, so the rebuilds "
                        "below may be no-ops; for a fresh demo use a new home (--home some-new-folder)")
                warm_up_clustering()
                t0 = time.perf_counter()
                staging, files = stage(a.settings.home, csv_file, days, seed)
                say(f"{'split ' + str(csv_file) if csv_file else 'generated a stream of'} {len(files)} day files in {time.perf_counter() - t0:.1f}s"
                    + ("" if csv_file else f" (true stories in {staging / 'truth'})"))
                maps: list = []
                result, alerts = replay(a, files, rebuild_every, progress, print_ingest, print_rebuild, maps.append)
                for job in maps:  # the page is out with a quick map; the refined one follows
                    with progress(f"refining the map of {len(job.doc_ids):,} documents (the page is written already)"):
                        job.run(a)
                # each alert was printed once, under the rebuild that raised it
                say(f"alerts raised: {len(alerts)} (feed: {a.settings.reports_dir / 'alerts.xml'})" if alerts else "alerts raised: none")
                if result and result.report:
                    say(f"open {a.settings.reports_dir / 'latest.html'} in a browser")
        except handoff.Busy as busy:
            say(f"another newsclust process (pid {busy}) owns this home; stop it or use another --home")
            raise typer.Exit(1)
