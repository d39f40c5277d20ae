"""Commands that read the home: status, search, story, topic, report, export. Beside a running serve, the queries
are asked of its API (it holds the model and the vectors); otherwise they read the home directly."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .. import handoff
from .app import Invocation, app, here
from .output import print_json, say

STORY_HEADLINES = 20


def _ask_api(inv: Invocation, path: str, **params) -> dict | None:
    """serve's answer (printing its error and exiting on a 4xx), or None when no serve answers: read directly."""
    from ..api_client import ApiUnavailable

    client = inv.api()
    if client is None:
        return None
    try:
        code, body = client.get(path, **params)
    except ApiUnavailable:
        return None  # it stopped meanwhile: the home is ours to read
    if code >= 400:
        say(body.get("error") or f"HTTP {code}")
        raise typer.Exit(1)
    return body


@app.command()
def report(ctx: typer.Context,
           out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of HOME/reports/."),
           run: Optional[int] = typer.Option(None, "--run", help="Render a past run."),
           standalone: bool = typer.Option(False, "--standalone", help="One self-contained file (plotly.js inline, about 4.6 MB more) to mail or share.")):
    """Write the HTML report of the latest (or a given) run."""
    from .. import usecases

    inv = here(ctx)
    inv.existing_home()
    with inv.opened() as a:
        try:
            path = usecases.write_report(a, run, out, standalone=standalone)
        except LookupError as exc:
            say(str(exc))
            raise typer.Exit(1)
    say(str(path))


@app.command()
def export(ctx: typer.Context,
           out: Optional[Path] = typer.Option(None, "--out", help="CSV file to write (default: standard output); a missing folder is made.")):
    """CSV, one row per document (noise: -1 at either level; cluster_id repeats story_id; a title is cut to its
    first 1,000 characters). Its columns:

    \b
    guid,title,story_id,story_name,topic_id,topic_name,probability,outlier_score,assigned_by,run_id,cluster_id
    """
    from .. import usecases

    inv = here(ctx)
    inv.existing_home()
    with inv.opened() as a:
        if out:
            say(f"{usecases.export_csv_file(a, out)} documents -> {out}")
        else:
            usecases.export_csv(a, sys.stdout)


@app.command()
def status(ctx: typer.Context,
           as_json: bool = typer.Option(False, "--json", help="One JSON object, for machines (api_url: where serve answers queries).")):
    """Documents, stories, topics, backlog, rebuild in progress, last error, files waiting to be retried and why."""
    from ..views import format_status

    inv = here(ctx)
    inv.existing_home()
    st = _ask_api(inv, "/status")
    if st is None:
        from .. import usecases

        with inv.opened() as a:
            st = usecases.status(a, serving_pid=handoff.serving_pid(a.settings))
    if as_json:
        print_json(st)
        return
    say(format_status(st))


@app.command()
def search(ctx: typer.Context,
           query: str = typer.Argument(..., help="Text to look for (a headline, a few words)."),
           k: int = typer.Option(10, "--k", min=1, max=1000, help="How many headlines."),
           as_json: bool = typer.Option(False, "--json", help="JSON, for machines.")):
    """The nearest headlines to a text, with similarity, time, story and topic. Beside a running serve, serve answers
    (it holds the model); otherwise this process loads the model (seconds)."""
    from ..views import format_hits

    inv = here(ctx)
    inv.existing_home()
    answer = _ask_api(inv, "/search", q=query, k=k)
    if answer is not None:
        hits = answer["hits"]
    else:
        from .. import usecases

        # a shared home's workers each own a vector copy: search must not open (and trim) one of theirs
        with inv.opened(**({"vector_cache": False} if inv.settings().shared else {})) as a:
            try:
                hits = usecases.search(a, query, k, serving=handoff.serving_pid(a.settings) is not None)
            except LookupError as exc:
                say(str(exc))
                raise typer.Exit(1)
    if as_json:
        print_json(hits)
        return
    say(format_hits(hits))


def _detail(inv: Invocation, kind: str, key: int, as_json: bool) -> dict | None:
    """Shared by `story` and `topic`: ask serve or read, say when it does not exist, or print it as JSON; None once handled."""
    inv.existing_home()
    detail = _ask_api(inv, f"/{'stories' if kind == 'story' else 'topics'}/{key}")
    if detail is None:
        from .. import usecases

        with inv.opened() as a:
            detail = (usecases.story_detail if kind == "story" else usecases.topic_detail)(a, key)
    if detail is None:
        say(f"no {kind} {key}")
        raise typer.Exit(1)
    if as_json:
        print_json(detail)
        return None
    return detail


@app.command()
def story(ctx: typer.Context, story_id: int = typer.Argument(...),
          as_json: bool = typer.Option(False, "--json", help="JSON, for machines (every headline)."),
          headlines: int = typer.Option(STORY_HEADLINES, "--headlines", "-n", min=0, help="How many of its headlines to print, core first."),
          show_all: bool = typer.Option(False, "--all", help="Print every headline.")):
    """A story: its title, keywords, topic, size per run, lineage, and its headlines core first (the newest beside)."""
    from ..views import format_story

    detail = _detail(here(ctx), "story", story_id, as_json)
    if detail is None:
        return
    say(format_story(detail, None if show_all else headlines))


@app.command()
def topic(ctx: typer.Context, topic_id: int = typer.Argument(...),
          as_json: bool = typer.Option(False, "--json", help="JSON, for machines.")):
    """A topic: its name, keywords, size per run, and its stories."""
    from ..views import format_topic

    detail = _detail(here(ctx), "topic", topic_id, as_json)
    if detail is None:
        return
    say(format_topic(detail))
