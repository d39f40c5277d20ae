"""SQLite history + stored layout -> one self-contained HTML page (plotly.js referenced beside it, no CDN)."""

from __future__ import annotations

import json

import numpy as np
from sqlalchemy import text

from .figures import esc, map_figure, sizes_figure


def render_report(repo, run, layout, max_points: int = 50_000, seed: int = 42) -> str:
    docs = repo.documents_with_assignment(run.id)
    latest = {}
    for d in docs:  # later rows (predictions after the rebuild) win
        latest[d.id] = d
    table = repo.cluster_table(run.id)
    names = {r.cluster_id: r.name for r in table}
    parts = [_summary(run, len(latest))]

    map_note = ""
    if layout is not None and latest:
        ids, xy = layout
        pos = {int(i): k for k, i in enumerate(ids)}
        keep = [d for d in latest.values() if int(d.id) in pos]
        if len(keep) > max_points:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(len(keep), size=max_points, replace=False))
            map_note = f"<p class=note>The map draws a random sample of {max_points:,} of {len(keep):,} documents.</p>"
            keep = [keep[i] for i in pick]
        coords = np.array([xy[pos[int(d.id)]] for d in keep]).reshape(-1, 2)
        cids = np.array([d.cluster_id for d in keep], np.int64)
        probs = np.array([d.probability for d in keep], np.float32)
        hover = [
            f"{esc(d.title)}<br>{esc(str(d.published_at or d.ingested_at))[:16]}<br>{esc(names.get(d.cluster_id, 'noise'), 60)}"
            f" · p={d.probability:.2f}" for d in keep
        ]
        fig = map_figure(coords, cids, hover, names, probs)
        parts.append(map_note + fig.to_html(full_html=False, include_plotlyjs=False, div_id="map"))
    with repo.engine.connect() as c:
        rows = [tuple(r) for r in c.execute(text("SELECT run_id, cluster_id, size FROM cluster_snapshots WHERE run_id <= :r"), {"r": run.id})]
    parts.append(sizes_figure(rows, names).to_html(full_html=False, include_plotlyjs=False, div_id="sizes"))
    parts.append(_cluster_table(repo, table))
    body = "\n".join(parts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:">
<title>newsclust — run {run.id}</title>
<script src="plotly.min.js"></script>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top;font-size:13px}}
.summary span{{display:inline-block;margin-right:1.5em}} .note{{color:#666;font-size:12px}} ul{{margin:0;padding-left:1.1em}}
</style></head><body>
<h1>newsclust — clusters of run {run.id}</h1>
{body}
</body></html>
"""


def _summary(run, n_docs: int) -> str:
    timings = json.loads(run.timings or "{}")
    stages = " · ".join(f"{esc(k)} {v:.2f}s" for k, v in timings.items() if isinstance(v, (int, float)))
    noise_share = (run.n_noise or 0) / max(run.n_documents or 1, 1)
    arrivals = max(0, n_docs - (run.n_documents or 0))
    return (
        f"<div class=summary><span><b>{run.n_documents:,}</b> documents clustered</span><span><b>{run.n_clusters}</b> clusters</span>"
        f"<span><b>{noise_share:.0%}</b> noise</span><span><b>{arrivals:,}</b> arrivals placed since</span>"
        f"<span>finished {esc(str(run.finished_at))[:19]} UTC</span></div><p class=note>Stage times: {stages}</p>"
    )


def _cluster_table(repo, table) -> str:
    rep_ids = [i for r in table for i in json.loads(r.representatives)]
    texts = repo.document_texts(np.array(rep_ids, np.int64)) if rep_ids else {}
    rows = []
    for r in table:
        reps = "".join(f"<li>{esc(texts.get(i, ('', ''))[0])}</li>" for i in json.loads(r.representatives))
        kw = esc(", ".join(json.loads(r.keywords)))
        rows.append(
            f"<tr id='cluster-{r.cluster_id}'><td>{r.cluster_id}</td><td>{kw}</td><td>{r.size}</td>"
            f"<td>{r.growth:+d}</td><td>{esc(str(r.first_seen))[:16]}</td><td><ul>{reps}</ul></td></tr>"
        )
    return (
        "<h2>Clusters</h2><table><thead><tr><th>id</th><th>keywords</th><th>size</th><th>growth</th><th>first seen</th>"
        "<th>representative headlines</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )
