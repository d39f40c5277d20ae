"""SQLite history + stored layout -> one HTML page (the morning page), plus the index of all reports.

Read top to bottom as a news desk would: what the stream is (headlines, news-time span, last 24 h), alerts,
then topics as sections with their stories as rows (growth over the last 24 h of news time, first and last
published time, a sparkline); a story's card lists all its headlines, core first (by membership, a button
turns it to newest first), with time and source and a filter box.
Then the timeline, the map and the lineage of what changed.

Each headline is written once, in a JSON table the page's script reads (cards and map hover text come from
it), which keeps a 100k-document page under 10 MB. plotly.js is referenced beside the page (or inlined with
`standalone=True`); when it is missing, each chart's place says so in words instead of staying blank.
Everything from outside (headlines, names, sources, urls) is escaped or inserted as text, never as HTML.
Here: the page around the sections; the sections in sections.py (over view.py's ReportView), the script
and style sheet in assets.py.
"""

from __future__ import annotations

from collections.abc import Collection

from ..config import Settings
from ..domain import Run
from ..ports import StoryReads
from . import model
from .assets import SCRIPT, STYLE
from .figures import esc
from .sections import (alerts_section, data_script, lede_section, lineage_section, map_section, run_footer, timeline_section, too_small,
                       topics_section)
from .view import ReportView


def render_report(repo: StoryReads, run: Run, layout, max_points: int = Settings.report_max_points, seed: int = Settings.seed, *,
                  standalone: bool = False, held=None) -> str:
    """The page of one run. `standalone`: plotly.js inline, one file that renders anywhere (about 4.5 MB more).
    held: story labels by run id the caller holds (the rebuild: its own and the last run's), for the lineage's flows."""
    docs = repo.report_documents(run.id)
    stories = {s.story_id: s for s in repo.run_stories(run.id)}
    topics = {t.topic_id: t for t in repo.run_topics(run.id)}
    alerts = repo.run_alerts(run.id)
    st = model.stream_time(docs.published, docs.ingested, docs.future)
    stats = model.story_stats(docs.story, st)
    view = ReportView(docs, stories, topics, st, stats)

    title = f"newsclust — run {run.id}"
    parts = [lede_section(run, view), alerts_section(alerts, view)]
    if not len(docs) or not view.story_order:
        parts.append(too_small(len(docs)))
    else:
        parts += [topics_section(view), timeline_section(view), map_section(view, layout, max_points, seed), lineage_section(repo.lineage(run.id, held), view)]
    parts.append(run_footer(run, docs))
    body = "\n".join(p for p in parts if p) + data_script(view)
    return _page(title, body, nav=True, standalone=standalone, sections=bool(view.story_order))


def _page(title: str, body: str, nav: bool = False, standalone: bool = False, sections: bool = False, script: bool = True) -> str:
    links = ("<p class=nav><a href='index.html'>all reports</a><a href='latest.html'>latest</a></p>" if nav and not standalone else "")
    if sections:
        links += ("<p class='sections note'>Jump to: <a href='#alerts'>alerts</a><a href='#topics'>topics and stories</a>"
                  "<a href='#timeline-section'>timeline</a><a href='#map-section'>map</a><a href='#lineage-section'>what changed</a></p>")
    if standalone:
        from plotly.offline import get_plotlyjs

        plotly = "<script>" + get_plotlyjs().replace("</script", "<\\/script") + "</script>"
    else:
        plotly = "<script src=\"plotly.min.js\"></script>"
    js = f"<script>{SCRIPT}</script>" if script else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval' file:; style-src 'unsafe-inline'; img-src data: blob:; font-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
{plotly}
<style>{STYLE}</style></head><body>
<h1>{esc(title)}</h1>{links}
{body}
{js}
</body></html>
"""


def render_index(runs: list[Run], existing: Collection[int] | None = None) -> str:
    """runs: newest first. `existing`: the run ids whose
    page is on disk; only those are linked (None: all, as before retention existed)."""
    shown = [r for r in runs if existing is None or r.id in existing]
    rows = "".join(
        f"<tr><td><a href='run-{r.id}.html'>run {r.id}</a></td><td>{esc(str(r.finished_at)[:19])}</td><td>{r.n_documents or 0:,}</td>"
        f"<td>{r.n_stories or 0}</td><td>{(r.n_noise or 0) / max(r.n_documents or 1, 1):.0%}</td></tr>"
        for r in shown
    )
    dropped = len(runs) - len(shown)
    note = f"<p class=note>{dropped} older run page{'s' * (dropped != 1)} not kept.</p>" if dropped else ""
    latest = "<p><a href='latest.html'>latest report</a></p>" if shown else "<p class=note>No report written yet.</p>"
    body = (latest + note + "<table><thead><tr><th>report</th><th>rebuilt (UTC)</th><th>documents</th>"
            "<th>stories</th><th>noise</th></tr></thead><tbody>" + rows + "</tbody></table>")
    return _page("newsclust — reports", body, script=False)
