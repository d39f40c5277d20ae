"""The sections of a run's page, top to bottom: lede, alerts, topics with their stories, timeline, map, what changed,
footer, and the headline table the page's script reads. Each is a function of the ReportView (view.py) to HTML text;
everything from outside (headlines, names, sources, urls) is escaped or inserted as text, never as HTML."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import plotly.io as pio

from ..domain import Alert, Lineage, ReportDocs, Run
from ..sorted_keys import find_rows
from . import model
from .figures import esc, lineage_figure, map_figure, timeline_figure
from .view import ReportView, fmt_day, fmt_time

ALERTS_SHOWN = 6
ROWS_SHOWN = 8  # stories per topic before "show more"
TIMELINE_STORIES = 8
MAP_LABELS = 24  # candidate labels: the largest stories and the fastest growing; the page keeps those that fit
MAX_FLOWS = 150
MAX_OUTLIERS_LISTED = 10
TITLE_LIMIT = 300


def lede_section(run, v: ReportView) -> str:
    n = len(v.docs)
    if not n:
        return "<p class=lede>No headlines yet.</p>"
    st = v.st
    recent = int(v.stats.recent.sum())
    n_topics = sum(1 for t in v.topic_order if t != -1)
    span = f"from <b>{fmt_time(st.start)}</b> to <b>{fmt_time(st.end)}</b> UTC (news time)" if st.start is not None else ""
    lede = (f"<p class=lede><b>{n:,}</b> headlines {span}, in <b>{n_topics}</b> topic{'s' * (n_topics != 1)} and "
            f"<b>{len(v.story_order)}</b> stor{'ies' if len(v.story_order) != 1 else 'y'}; "
            f"<b>{recent:,}</b> in the last 24 h of the stream.</p>")
    notes = []
    noise = int((v.docs.story < 0).sum())
    if noise:
        notes.append(f"{noise:,} headlines ({noise / n:.0%}) sit in no story yet.")
    if st.n_fallback:
        notes.append(f"<b>{st.n_fallback:,}</b> headline{'s' * (st.n_fallback != 1)} carr{'y' if st.n_fallback != 1 else 'ies'} "
                     "no published time: the time it was ingested stands in.")
    else:
        notes.append("Every headline carries its published time.")
    out = np.flatnonzero(st.outlier)
    if len(out):
        items = "".join(f"<li>{fmt_time(st.time[i])} — {esc(v.docs.titles[i], 120)}</li>"
                        for i in out[np.argsort(st.time[out])][:MAX_OUTLIERS_LISTED])
        more = f"<li>… and {len(out) - MAX_OUTLIERS_LISTED:,} more</li>" if len(out) > MAX_OUTLIERS_LISTED else ""
        notes.append(f"{len(out):,} headline{'s' * (len(out) != 1)} dated far outside the stream's span "
                     f"{'are' if len(out) != 1 else 'is'} left off the charts:<ul class=outliers>{items}{more}</ul>")
    return lede + "<div class=note>" + " ".join(f"<p>{x}</p>" for x in notes) + "</div>"


def alerts_section(alerts: list[Alert], v: ReportView) -> str:
    head = "<section id=alerts><h2>Alerts</h2>"
    if not alerts:
        return head + ("<p class=note>No alerts yet: a story shows here when it is born with enough headlines (new) "
                       "or grows well above its own and the stream's usual rate (surging).</p></section>")
    rows = []
    for k, a in enumerate(alerts):
        if k == ALERTS_SHOWN:
            rows.append("</ul><details class=morealerts><summary>" + f"{len(alerts) - ALERTS_SHOWN} older alerts</summary><ul class=alerts>")
        title = esc(a.title, 140)
        if a.story_id in v.row:
            title = f"<a href='#story-{a.story_id}'>{title}</a>"
        rows.append(f"<li class='alert {esc(a.kind)}'><span class=badge>{esc(a.kind)}</span> {title} "
                    f"<span class=note>{a.size} headlines, {a.recent} recent · {esc(a.topic_name or '', 60)} · "
                    f"{fmt_time(a.stream_time)}</span></li>")
    return head + "<ul class=alerts>" + "".join(rows) + "</ul>" + ("</details>" if len(alerts) > ALERTS_SHOWN else "") + "</section>"


def too_small(n: int) -> str:
    if not n:
        return ("<section class=empty><h2>Nothing to show yet</h2><p>This home holds no clustered headlines. Drop CSV files "
                "into the inbox; the page fills in after the next rebuild.</p></section>")
    return (f"<section class=empty><h2>Too few headlines for stories yet</h2><p>{n:,} headline{'s' * (n != 1)}, and no "
            "group of similar ones large enough to be a story (a story needs at least 5). No map or timeline until "
            "there is one.</p></section>")


def _spark(counts: np.ndarray, colour: str, w: int = 120, h: int = 22) -> str:
    top = max(int(counts.max()), 1) if len(counts) else 1
    if len(counts) <= 1:
        return f"<svg class=spark width={w} height={h} viewBox='0 0 {w} {h}'><circle cx={w // 2} cy={h // 2} r=3 fill='{colour}'/></svg>"
    step = (w - 2) / (len(counts) - 1)
    pts = " ".join(f"{1 + i * step:.0f},{h - 2 - (h - 4) * c / top:.0f}" for i, c in enumerate(counts.tolist()))
    return f"<svg class=spark width={w} height={h} viewBox='0 0 {w} {h}' preserveAspectRatio=none><polyline points='{pts}' fill=none stroke='{colour}' stroke-width=1.5/></svg>"


# column widths in STYLE (c-story .. c-spark), so a narrow window can change them
_COLS = ("<colgroup><col class=c-story><col class=c-num><col class=c-num><col class=c-time><col class=c-time><col class=c-spark>"
         "</colgroup>")


def topics_section(v: ReportView) -> str:
    unit = "hour" if v.stats.spark_step <= model.HOUR else "day" if v.stats.spark_step <= model.DAY else f"{v.stats.spark_step // model.DAY} days"
    out = ["<section id=topics><h2>Topics and their stories</h2>"
           f"<p class=note>Busiest in the last 24 h of news time first. Click a story for all its headlines. "
           f"Sparkline: headlines per {unit}, {fmt_day(v.st.start)} to {fmt_day(v.st.end)}.</p>"]
    head = ("<thead><tr><th>story</th><th class=num>headlines</th><th class=num>last 24&nbsp;h</th><th>first published</th>"
            "<th>last published</th><th>headlines over time</th></tr></thead>")
    for tid in v.topic_order:
        sids = v.by_topic[tid]
        hue = v.topic_hue[tid]
        kw = ", ".join(_more_keywords(v.topic_name(tid), v.topics[tid].keywords[:6])) if tid in v.topics else ""
        out.append(
            f"<section class=topic id=topic-{tid}><h3><span class=sw style='background:{model.shade(hue, 0, tid != -1)}'></span>"
            f"{esc(v.topic_name(tid), 90)} <span class=note>{v.topic_size[tid]:,} headlines · {len(sids)} "
            f"stor{'ies' if len(sids) != 1 else 'y'} · +{v.topic_recent[tid]:,} in 24 h{' · ' + esc(kw, 120) if kw else ''}</span></h3>"
            f"<table class=stories>{_COLS}{head if tid == v.topic_order[0] else ''}<tbody>")
        for k, sid in enumerate(sids):
            if k == ROWS_SHOWN:
                out.append("</tbody><tbody class=more hidden>")
            i = v.row[sid]
            s = v.stats
            rec = int(s.recent[i])
            out.append(
                f"<tr id=story-{sid}><td><details class=card data-story={sid}><summary><span class=dot style='background:{v.colour[sid]}'>"
                f"</span>{esc(v.story_label(sid), 160)}</summary></details></td><td class=num>{int(s.size[i]):,}</td>"
                f"<td class='num{' grow' if rec else ''}'>{'+' if rec else ''}{rec:,}</td><td>{fmt_time(s.first[i])}</td><td>{fmt_time(s.last[i])}</td>"
                f"<td>{_spark(s.spark[i], v.colour[sid])}</td></tr>")
        out.append("</tbody></table>")
        if len(sids) > ROWS_SHOWN:
            out.append(f"<button class=showmore>show {len(sids) - ROWS_SHOWN} more stories</button>")
        out.append("</section>")
    out.append("</section>")
    return "".join(out)


def _more_keywords(name: str, keywords: list[str]) -> list[str]:
    """A topic is named by its top keywords: the header lists only the ones its name does not already say."""
    said = {part.strip().lower() for part in name.split(",")}
    return [k for k in keywords if k.lower() not in said]


def _figure_box(div_id: str, fig, height: int, rows: list[list[int]] | None = None) -> str:
    spec = _script_safe(pio.to_json(fig, validate=False))
    extra = f"<script type=application/json id=rows-{div_id}>{_script_json(rows)}</script>" if rows is not None else ""
    return (f"<div class=figbox style='min-height:{height}px'><p class=nofig>This chart needs plotly.js, which did not load: "
            f"keep <code>plotly.min.js</code> beside this page, or write one self-contained file with "
            f"<code>newsclust report --standalone</code>.</p><div id={div_id} class=plot data-spec=spec-{div_id}></div></div>"
            f"<script type=application/json id=spec-{div_id}>{spec}</script>{extra}")


def timeline_section(v: ReportView) -> str:
    st = v.st
    if st.start is None:
        return ""
    edges, step = st.bins(400)
    ok = ~st.outlier & ~np.isnat(st.time)
    secs = int(step / np.timedelta64(1, "s"))
    b = np.clip((st.time[ok].astype(np.int64) - int(edges[0].astype(np.int64))) // secs, 0, len(edges) - 1)
    total = np.bincount(b, minlength=len(edges))
    top = sorted(v.story_order, key=lambda s: -v.stats.size[v.row[s]])[:TIMELINE_STORIES]
    series = []
    for sid in top:
        m = v.docs.story[ok] == sid
        series.append((v.story_label(sid), v.colour[sid], np.bincount(b[m], minlength=len(edges))))
    unit = "hour" if step <= model.HOUR else "day" if step <= model.DAY else "week" if step <= 7 * model.DAY else f"{step // model.DAY} days"
    fig = timeline_figure(edges, step, total, series, st.start, st.end, unit)
    return ("<section id=timeline-section><h2>Timeline</h2><p class=note>Headlines per " + unit + " by published time, "
            f"{fmt_time(st.start)} to {fmt_time(st.end)}; the {len(top)} largest stories as lines.</p>" + _figure_box("timeline", fig, 340) + "</section>")


def map_section(v: ReportView, layout, max_points: int, seed: int) -> str:
    head = "<section id=map-section><h2>Map</h2>"
    if layout is None:
        return head + "<p class=note>No map for this run (no layout stored).</p></section>"
    ids, xy_all = layout  # a layout lists each document once: each headline's row in it, found by sorting (not a dict of 100k)
    ids = np.asarray(ids, np.int64)
    layout_row, placed = find_rows(ids, v.docs.ids)
    rows = np.flatnonzero(placed)
    if len(rows) < 3:
        return head + "<p class=note>Too few placed headlines to draw a map.</p></section>"
    xy_rows = np.asarray(xy_all, np.float32)[layout_row[rows]]
    note = ""
    if len(rows) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_points, replace=False))
        note = f" The map draws a random sample of {max_points:,} of {len(rows):,} headlines."
        rows_drawn, xy = rows[pick], xy_rows[pick]
    else:
        rows_drawn, xy = rows, xy_rows
    story = v.docs.story[rows_drawn]
    colours = [v.colour.get(int(s), model.NOISE_COLOUR) for s in story.tolist()]
    topic_of = {s: t for t in v.topic_order for s in v.by_topic[t]}
    point_topic = np.array([topic_of.get(int(s), -2) for s in story.tolist()], np.int64)
    groups = [(v.topic_name(t), np.flatnonzero(point_topic == t)) for t in v.topic_order]
    groups = [g for g in groups if len(g[1])] + ([("noise", np.flatnonzero(point_topic == -2))] if (point_topic == -2).any() else [])
    # labels: the largest stories and the fastest growing, placed at the median of all their points
    by_size = sorted(v.story_order, key=lambda s: -v.stats.size[v.row[s]])
    by_growth = [s for s in sorted(v.story_order, key=lambda s: -v.stats.recent[v.row[s]]) if v.stats.recent[v.row[s]] > 0]
    cand = list(dict.fromkeys(x for pair in zip(by_size, by_growth + by_size) for x in pair))[:MAP_LABELS]
    full_story = v.docs.story[rows]
    labels = []
    for sid in cand:
        m = full_story == sid
        if m.any():
            cx, cy = np.median(xy_rows[m], axis=0)
            labels.append((v.story_label(sid), float(cx), float(cy)))
    keep = model.label_layout(labels, xy.min(axis=0), xy.max(axis=0))
    labels = [lab for lab, k in zip(labels, keep) if k]
    size, opacity = model.point_size(len(rows_drawn))
    fig = map_figure(xy, colours, groups, None, labels, size, opacity)
    idx = [rows_drawn[g].tolist() for _, g in groups]
    return (head + "<p class=note>Each dot is a headline; stories share their topic's hue. Labels name the largest and the "
            "fastest-growing stories where they fit; hover a dot for its headline and story. Click a topic in the legend "
            f"to hide it.{note}</p>" + _figure_box("map", fig, 700, idx) + "</section>")


def lineage_section(lin: Lineage, v: ReportView) -> str:
    head = "<section id=lineage-section><h2>What changed since the last rebuild</h2>"
    if lin.previous_run is None:
        return head + "<p class=note>First rebuild: nothing to compare with yet.</p></section>"
    story_events = [e for e in lin.events if e.level == "story"]
    # a moved event's parents/children are topic ids; the others' are stories
    changed = {e.cluster_id for e in story_events} | {x for e in story_events if e.kind != "moved" for x in e.parents + e.children}
    flows = [f for f in lin.flows if (f[0] in changed or f[1] in changed) and f[0] != f[1] or (f[0] == f[1] and f[0] in changed)]
    flows = flows[:MAX_FLOWS]
    counts = Counter(("topic " if e.level == "topic" else "") + e.kind for e in lin.events)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    items = []
    name_now = lambda s: esc(v.story_label(s), 70)  # noqa: E731
    split_links = {(e.cluster_id, c) for e in story_events if e.kind == "split" for c in e.children}
    for e in story_events[:20]:
        if e.kind == "split":
            items.append(f"<li>#{e.cluster_id} {esc(lin.previous_names.get(e.cluster_id, ''), 70)} split into "
                         f"{', '.join('#%d' % c for c in e.children)}</li>")
        elif e.kind == "merged":
            items.append(f"<li>{', '.join('#%d' % p for p in e.parents)} merged into #{e.cluster_id} {name_now(e.cluster_id)}</li>")
        elif e.kind == "born" and e.parents and all((q, e.cluster_id) in split_links for q in e.parents):
            continue  # its split line names it already: each link once
        elif e.kind == "born":
            source = f", from {', '.join('#%d' % q for q in e.parents)}" if e.parents else ""
            items.append(f"<li>new story #{e.cluster_id} {name_now(e.cluster_id)}{source}</li>")
        elif e.kind == "died":
            items.append(f"<li>#{e.cluster_id} {esc(lin.previous_names.get(e.cluster_id, ''), 70)} ended</li>")
        elif e.kind == "moved":
            frm, to = (e.parents or [-1])[0], (e.children or [-1])[0]
            items.append(f"<li>#{e.cluster_id} {name_now(e.cluster_id)} moved from topic "
                         f"{esc(lin.previous_topic_names.get(frm, '#%d' % frm), 60)} to {esc(v.topic_name(to), 60)}</li>")
    more = f"<li>… and {len(story_events) - 20} more</li>" if len(story_events) > 20 else ""
    if not story_events and not counts:
        return head + f"<p class=note>Since run {lin.previous_run}: no story or topic was born, died, split, merged or moved.</p></section>"
    text = f"<p class=note>Since run {lin.previous_run}: {summary}.</p>" + (f"<ul class=changes>{''.join(items)}{more}</ul>" if items else "")
    if not flows:
        return head + text + "</section>"
    moved = {e.cluster_id: e for e in story_events if e.kind == "moved"}

    def left(s: int) -> str:
        if s < 0:
            return "no story (noise)"
        pt = lin.previous_topics.get(s, -1)
        t = f" · {lin.previous_topic_names.get(pt, '#%d' % pt)[:30]}" if s in moved else ""
        return f"#{s} {lin.previous_names.get(s, '')}"[:50] + t

    def right(s: int) -> str:
        if s < 0:
            return "no story (noise)"
        t = f" · {v.topic_name(v.stories[s].topic_id)[:30]}" if s in moved and s in v.stories else ""
        return f"#{s} {v.story_label(s)}"[:50] + t

    lefts = {a: left(a) for a, _, _ in flows}
    rights = {b: right(b) for _, b, _ in flows}
    fig = lineage_figure(flows, lefts, rights, v.colour)
    return head + text + "<p class=note>Headlines flowing between the last rebuild's stories (left) and this one's (right), only where "\
        "a story split, merged, was born, ended or moved to another topic.</p>" + _figure_box("lineage", fig, 140) + "</section>"


def run_footer(run: Run, docs: ReportDocs) -> str:
    stages = " · ".join(f"{esc(k)} {v:.2f}s" for k, v in run.timings.items() if isinstance(v, (int, float)))
    arrivals = int(docs.predicted.sum())
    return (f"<footer class=note><p>Run {run.id}, rebuilt {esc(str(run.finished_at))[:19]} UTC over {run.n_documents or 0:,} documents; "
            f"{arrivals:,} arrivals placed since. Stage times: {stages or '—'}.</p></footer>")


def data_script(v: ReportView) -> str:
    """The page's headline table: each headline once, read by the cards and the map's hover text."""
    d = v.docs
    if not len(d):
        return ""
    st = v.st
    valid = ~np.isnat(st.time)
    base = int(model._floor(st.time[valid].min(), model.DAY).astype(np.int64)) if valid.any() else 0
    minutes = np.where(valid, (st.time.astype(np.int64) - base) // 60, 0).tolist()
    src_index: dict[str, int] = {}
    s_col = [src_index.setdefault(s, len(src_index)) if s else -1 for s in d.sources]
    members: dict[int, list[int]] = {}
    order = np.lexsort((d.ids, st.time.astype(np.int64), -d.probability))  # core first (membership), the card offers newest first
    for i in order.tolist():
        sid = int(d.story[i])
        if sid in v.row:
            members.setdefault(sid, []).append(i)
    data = {
        "base": base, "t": [t[:TITLE_LIMIT] for t in d.titles], "w": minutes, "fb": np.flatnonzero(st.fallback).tolist(),
        "src": list(src_index), "s": s_col if src_index else [],
        "u": {str(i): u for i, u in enumerate(d.urls) if u and u[:8].lower().startswith(("http://", "https://"))},
        "g": {str(k): m for k, m in members.items()}, "n": {str(s): v.story_label(s)[:80] for s in v.row},
    }
    return f"\n<script type=application/json id=report-data>{_script_json(data)}</script>"


def _script_json(obj) -> str:
    return _script_safe(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def _script_safe(js: str) -> str:
    """JSON text safe inside a <script type=application/json> element: no `</` (so nothing can close it) and no
    `<!--`; the escapes are still the same JSON strings. (Escaping every `<` would cost 1 MB at 100k headlines.)"""
    return js.replace("</", "<\\/").replace("<!--", "\\u003c!--")
