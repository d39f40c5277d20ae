"""SQLite history + stored layout -> one self-contained HTML page, plus the index of all reports.

plotly.js is written once beside the reports and referenced relatively: pages open from the
file system with no network. Everything from outside (headlines, names) is escaped.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
from sqlalchemy import text

from .figures import esc, lineage_figure, map_figure, timeline_figure

TOP_TIMELINE = 10
TOP_DETAILS = 40
MAX_FLOWS = 120


def render_report(repo, run, layout, max_points: int = 50_000, seed: int = 42) -> str:
    docs = repo.documents_with_assignment(run.id)
    latest = {}
    for d in docs:  # rows come in id order per document; predictions after the rebuild come later and win
        latest[d.id] = d
    table = repo.cluster_table(run.id)
    names = {r.cluster_id: r.name for r in table}
    arrivals = sum(1 for d in latest.values() if d.assigned_by == "predict")
    parts = [_summary(run, arrivals)]
    parts.append(_map(latest, layout, names, max_points, seed))
    parts.append(_cluster_table(table))
    parts.append(_div(_timeline(latest, table, names), "timeline"))
    parts.append(_lineage(repo, run, names))
    parts.append(_details(repo, run, table))
    return _page(f"newsclust — run {run.id}", "\n".join(p for p in parts if p), nav=True)


def _page(title: str, body: str, nav: bool = False) -> str:
    links = "<p class=nav><a href='index.html'>all reports</a> · <a href='latest.html'>latest</a></p>" if nav else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval' file:; style-src 'unsafe-inline'; img-src data: blob:; font-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<script src="plotly.min.js"></script>
<style>
body{{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em auto;max-width:1400px;color:#222;padding:0 1em}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #e3e3e3;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px}}
th{{background:#f6f6f6}} .summary span{{display:inline-block;margin-right:1.6em;font-size:15px}} .note{{color:#666;font-size:12px}}
ul{{margin:0;padding-left:1.1em}} .grow{{color:#1a7f37}} .shrink{{color:#b42318}} h2{{margin-top:1.6em}} .card{{border:1px solid #e3e3e3;border-radius:6px;padding:.6em 1em;margin:.6em 0}}
</style></head><body>
<h1>{esc(title)}</h1>{links}
{body}
</body></html>
"""


def _div(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def _summary(run, arrivals: int) -> str:
    timings = json.loads(run.timings or "{}")
    stages = " · ".join(f"{esc(k)} {v:.2f}s" for k, v in timings.items() if isinstance(v, (int, float)))
    noise_share = (run.n_noise or 0) / max(run.n_documents or 1, 1)
    return (
        f"<div class=summary><span><b>{run.n_documents:,}</b> documents</span><span><b>{run.n_clusters}</b> clusters</span>"
        f"<span><b>{noise_share:.0%}</b> noise</span><span><b>{arrivals:,}</b> arrivals placed since this rebuild</span>"
        f"<span>rebuilt {esc(str(run.finished_at))[:19]} UTC</span></div><p class=note>Stage times: {stages}</p>"
    )


def _map(latest: dict, layout, names: dict[int, str], max_points: int, seed: int) -> str:
    if layout is None or not latest:
        return "<p class=note>No map for this run (no layout stored).</p>"
    ids, xy = layout
    pos = {int(i): k for k, i in enumerate(ids)}
    keep = [d for d in latest.values() if int(d.id) in pos]
    note = ""
    if len(keep) > max_points:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(keep), size=max_points, replace=False))
        note = f"<p class=note>The map draws a random sample of {max_points:,} of {len(keep):,} documents.</p>"
        keep = [keep[i] for i in pick]
    coords = np.array([xy[pos[int(d.id)]] for d in keep], np.float32).reshape(-1, 2)
    cids = np.array([d.cluster_id for d in keep], np.int64)
    probs = np.array([d.probability for d in keep], np.float32)
    hover = [
        f"{esc(d.title, 110)}<br>{esc(str(d.published_at or d.ingested_at)[:16])} · "
        f"{esc(names.get(d.cluster_id, 'noise'), 50)} · p={d.probability:.2f}" for d in keep
    ]
    return "<h2>Map</h2><p class=note>Click a legend entry to hide a cluster; noise is grey.</p>" + note + _div(
        map_figure(coords, cids, hover, names, probs), "map")


def _cluster_table(table) -> str:
    rows = []
    for r in table:
        reps = json.loads(r.representatives)
        cls = "grow" if r.growth > 0 else "shrink" if r.growth < 0 else ""
        rows.append(
            f"<tr><td><a href='#cluster-{r.cluster_id}'>#{r.cluster_id}</a></td><td>{esc(', '.join(json.loads(r.keywords)))}</td>"
            f"<td>{r.size}</td><td class={cls}>{r.growth:+d}</td><td>{esc(str(r.first_seen)[:16])}</td>"
            f"<td>{len(reps)} headlines below</td></tr>"
        )
    return ("<h2>Clusters, fastest growing first</h2><table><thead><tr><th>id</th><th>keywords</th><th>size</th><th>growth</th>"
            "<th>first seen</th><th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _timeline(latest: dict, table, names: dict[int, str]):
    top = [r.cluster_id for r in sorted(table, key=lambda r: -r.size)[:TOP_TIMELINE]]
    per: dict[int, Counter] = defaultdict(Counter)
    days_seen = set()
    for d in latest.values():
        when = d.published_at or d.ingested_at
        day = str(when)[:10]
        days_seen.add(day)
        if d.cluster_id in top:
            per[d.cluster_id][day] += 1
    days = sorted(days_seen)
    return timeline_figure(days, {c: [per[c][day] for day in days] for c in top}, names)


def _lineage(repo, run, names: dict[int, str]) -> str:
    with repo.engine.connect() as c:
        prev = c.execute(text("SELECT MAX(id) FROM runs WHERE status='done' AND id < :r"), {"r": run.id}).scalar_one()
        if prev is None:
            return "<h2>Lineage</h2><p class=note>First run: nothing to compare with yet.</p>"
        flows = c.execute(text(
            """
            SELECT p.cluster_id, n.cluster_id, COUNT(*) FROM assignments p
            JOIN assignments n ON n.document_id = p.document_id AND n.run_id = :r AND n.assigned_by = 'rebuild'
            WHERE p.run_id = :p AND p.assigned_by = 'rebuild' AND NOT (p.cluster_id = -1 AND n.cluster_id = -1)
            GROUP BY p.cluster_id, n.cluster_id ORDER BY COUNT(*) DESC
            """), {"r": run.id, "p": prev}).all()
        names_prev = dict(c.execute(text("SELECT cluster_id, name FROM cluster_snapshots WHERE run_id=:p"), {"p": prev}).all())
        events = c.execute(text("SELECT kind, cluster_id, parents, children FROM cluster_events WHERE run_id=:r AND kind IN ('split','merged','born','died')"),
                           {"r": run.id}).all()
    # show what changed: flows out of clusters that split, into clusters that merged or were born, and the biggest others
    changed = {e.cluster_id for e in events} | {int(x) for e in events for x in json.loads(e.parents) + json.loads(e.children)}
    chosen = [f for f in flows if f[0] in changed or f[1] in changed][:MAX_FLOWS]
    chosen += [f for f in flows if f not in chosen][: max(0, 30 - len(chosen))]
    counts = Counter(e.kind for e in events)
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no births, deaths, splits or merges"
    if not chosen:
        return f"<h2>Lineage</h2><p class=note>Since run {prev}: {summary}.</p>"
    return f"<h2>Lineage</h2><p class=note>Since run {prev}: {summary}.</p>" + _div(
        lineage_figure([tuple(map(int, f)) for f in chosen], prev, run.id, names_prev, names), "lineage")


def _details(repo, run, table) -> str:
    top = table[:TOP_DETAILS]
    rep_ids = [i for r in top for i in json.loads(r.representatives)]
    texts = repo.document_texts(np.array(rep_ids, np.int64)) if rep_ids else {}
    with repo.engine.connect() as c:
        history = defaultdict(list)
        for cid, rid, size in c.execute(text("SELECT cluster_id, run_id, size FROM cluster_snapshots WHERE run_id <= :r ORDER BY run_id"), {"r": run.id}):
            history[cid].append((rid, size))
        lineage = defaultdict(list)
        for kind, cid, parents, children, rid in c.execute(text("SELECT kind, cluster_id, parents, children, run_id FROM cluster_events WHERE run_id <= :r"), {"r": run.id}):
            lineage[cid].append((rid, kind, json.loads(parents), json.loads(children)))
    cards = []
    for r in top:
        reps = "".join(f"<li>{esc(texts.get(i, ('', ''))[0], 200)}</li>" for i in json.loads(r.representatives))
        sizes = " → ".join(f"{s}" for _, s in history[r.cluster_id][-12:])
        events = "; ".join(
            f"run {rid}: {esc(kind)}" + (f" from {', '.join('#%d' % p for p in parents)}" if parents else "")
            + (f" into {', '.join('#%d' % ch for ch in children)}" if children else "")
            for rid, kind, parents, children in lineage[r.cluster_id][-6:]
        )
        cards.append(
            f"<div class=card id='cluster-{r.cluster_id}'><b>#{r.cluster_id} {esc(r.name)}</b> — {r.size} headlines, "
            f"first seen {esc(str(r.first_seen)[:16])}<br><span class=note>keywords: {esc(', '.join(json.loads(r.keywords)))}<br>"
            f"size by run: {sizes}<br>history: {events or 'none yet'}</span><ul>{reps}</ul></div>"
        )
    more = f"<p class=note>Details of the {len(top)} largest-growth clusters of {len(table)}.</p>" if len(table) > len(top) else ""
    return "<h2>Cluster details</h2>" + more + "".join(cards)


def render_index(runs) -> str:
    """runs: rows of (id, finished_at, n_documents, n_clusters, n_noise), newest first."""
    rows = "".join(
        f"<tr><td><a href='run-{r.id}.html'>run {r.id}</a></td><td>{esc(str(r.finished_at)[:19])}</td><td>{r.n_documents:,}</td>"
        f"<td>{r.n_clusters}</td><td>{(r.n_noise or 0) / max(r.n_documents or 1, 1):.0%}</td></tr>"
        for r in runs
    )
    body = ("<p><a href='latest.html'>latest report</a></p><table><thead><tr><th>report</th><th>rebuilt (UTC)</th><th>documents</th>"
            "<th>clusters</th><th>noise</th></tr></thead><tbody>" + rows + "</tbody></table>")
    return _page("newsclust — reports", body)
