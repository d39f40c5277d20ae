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
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection

import numpy as np
import plotly.io as pio

from ..config import Settings
from ..domain import Alert, Lineage, ReportDocs, Run, StoryRow, TopicRow
from ..ports import StoryReads
from . import model
from .figures import esc, lineage_figure, map_figure, timeline_figure

ALERTS_SHOWN = 6
ROWS_SHOWN = 8  # stories per topic before "show more"
TIMELINE_STORIES = 8
MAP_LABELS = 24  # candidate labels: the largest stories and the fastest growing; the page keeps those that fit
MAX_FLOWS = 150
MAX_OUTLIERS_LISTED = 10
TITLE_LIMIT = 300


def render_report(repo: StoryReads, run: Run, layout, max_points: int = Settings.report_max_points, seed: int = Settings.seed, *,
                  standalone: bool = False) -> str:
    """The page of one run. `standalone`: plotly.js inline, one file that renders anywhere (about 4.5 MB more)."""
    docs = repo.report_documents(run.id)
    stories = {s.story_id: s for s in repo.run_stories(run.id)}
    topics = {t.topic_id: t for t in repo.run_topics(run.id)}
    alerts = repo.run_alerts(run.id)
    st = model.stream_time(docs.published, docs.ingested, docs.future)
    stats = model.story_stats(docs.story, st)
    view = _View(docs, stories, topics, st, stats)

    title = f"newsclust — run {run.id}"
    parts = [_lede(run, view), _alerts(alerts, view)]
    if not len(docs) or not view.story_order:
        parts.append(_too_small(len(docs)))
    else:
        parts += [_topics(view), _timeline(view), _map(view, layout, max_points, seed), _lineage(repo.lineage(run.id), view)]
    parts.append(_run_footer(run, docs))
    body = "\n".join(p for p in parts if p) + _data_script(view)
    return _page(title, body, nav=True, standalone=standalone, sections=bool(view.story_order))


class _View:
    """Everything the sections share: orderings, colours, per-story numbers."""

    def __init__(self, docs: ReportDocs, stories: dict[int, StoryRow], topics: dict[int, TopicRow], st, stats):
        self.docs, self.stories, self.topics, self.st, self.stats = docs, stories, topics, st, stats
        at = stats.index()
        self.row = {sid: at[sid] for sid in stories if sid in at}
        by_topic: dict[int, list[int]] = {}
        for sid in self.row:
            tid = stories[sid].topic_id if stories[sid].topic_id in topics else -1
            by_topic.setdefault(tid, []).append(sid)
        for sids in by_topic.values():
            sids.sort(key=lambda s: (-stats.recent[self.row[s]], -stats.size[self.row[s]], s))
        recent = {t: int(sum(stats.recent[self.row[s]] for s in sids)) for t, sids in by_topic.items()}
        size = {t: int(sum(stats.size[self.row[s]] for s in sids)) for t, sids in by_topic.items()}
        self.topic_order = sorted(by_topic, key=lambda t: (t == -1, -recent[t], -size[t], t))
        self.by_topic, self.topic_recent, self.topic_size = by_topic, recent, size
        self.story_order = [s for t in self.topic_order for s in by_topic[t]]
        hues = model.topic_colours([t for t in self.topic_order if t != -1])
        self.topic_hue = {t: hues.get(t, 0.0) for t in self.topic_order}
        self.colour = {s: model.shade(self.topic_hue[t], i, saturated=t != -1) for t in self.topic_order for i, s in enumerate(by_topic[t])}

    def story_label(self, sid: int) -> str:
        return self.stories[sid].title if sid in self.stories else ("noise" if sid < 0 else f"story {sid}")

    def topic_name(self, tid: int) -> str:
        return self.topics[tid].name if tid in self.topics else "stories in no topic"


def _fmt(t) -> str:
    if t is None or np.isnat(np.datetime64(t, "s")):
        return "—"
    return str(np.datetime64(t, "m")).replace("T", " ")


def _day(t) -> str:
    return "—" if t is None or np.isnat(np.datetime64(t, "s")) else str(np.datetime64(t, "D"))


def _lede(run, v: _View) -> str:
    n = len(v.docs)
    if not n:
        return "<p class=lede>No headlines yet.</p>"
    st = v.st
    recent = int(v.stats.recent.sum())
    n_topics = sum(1 for t in v.topic_order if t != -1)
    span = f"from <b>{_fmt(st.start)}</b> to <b>{_fmt(st.end)}</b> UTC (news time)" if st.start is not None else ""
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
        items = "".join(f"<li>{_fmt(st.time[i])} — {esc(v.docs.titles[i], 120)}</li>"
                        for i in out[np.argsort(st.time[out])][:MAX_OUTLIERS_LISTED])
        more = f"<li>… and {len(out) - MAX_OUTLIERS_LISTED:,} more</li>" if len(out) > MAX_OUTLIERS_LISTED else ""
        notes.append(f"{len(out):,} headline{'s' * (len(out) != 1)} dated far outside the stream's span "
                     f"{'are' if len(out) != 1 else 'is'} left off the charts:<ul class=outliers>{items}{more}</ul>")
    return lede + "<div class=note>" + " ".join(f"<p>{x}</p>" for x in notes) + "</div>"


def _alerts(alerts: list[Alert], v: _View) -> str:
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
                    f"{_fmt(a.stream_time)}</span></li>")
    return head + "<ul class=alerts>" + "".join(rows) + "</ul>" + ("</details>" if len(alerts) > ALERTS_SHOWN else "") + "</section>"


def _too_small(n: int) -> str:
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


def _topics(v: _View) -> str:
    unit = "hour" if v.stats.spark_step <= model.HOUR else "day" if v.stats.spark_step <= model.DAY else f"{v.stats.spark_step // model.DAY} days"
    out = ["<section id=topics><h2>Topics and their stories</h2>"
           f"<p class=note>Busiest in the last 24 h of news time first. Click a story for all its headlines. "
           f"Sparkline: headlines per {unit}, {_day(v.st.start)} to {_day(v.st.end)}.</p>"]
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
                f"<td class='num{' grow' if rec else ''}'>{'+' if rec else ''}{rec:,}</td><td>{_fmt(s.first[i])}</td><td>{_fmt(s.last[i])}</td>"
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


def _timeline(v: _View) -> str:
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
            f"{_fmt(st.start)} to {_fmt(st.end)}; the {len(top)} largest stories as lines.</p>" + _figure_box("timeline", fig, 340) + "</section>")


def _map(v: _View, layout, max_points: int, seed: int) -> str:
    head = "<section id=map-section><h2>Map</h2>"
    if layout is None:
        return head + "<p class=note>No map for this run (no layout stored).</p></section>"
    ids, xy_all = layout
    pos = {int(i): k for k, i in enumerate(ids)}
    rows = np.array([k for k, d in enumerate(v.docs.ids.tolist()) if d in pos], np.int64)
    if len(rows) < 3:
        return head + "<p class=note>Too few placed headlines to draw a map.</p></section>"
    xy_rows = np.asarray(xy_all, np.float32)[[pos[int(d)] for d in v.docs.ids[rows]]]
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


def _lineage(lin: Lineage, v: _View) -> str:
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


def _run_footer(run: Run, docs: ReportDocs) -> str:
    stages = " · ".join(f"{esc(k)} {v:.2f}s" for k, v in run.timings.items() if isinstance(v, (int, float)))
    arrivals = int(docs.predicted.sum())
    return (f"<footer class=note><p>Run {run.id}, rebuilt {esc(str(run.finished_at))[:19]} UTC over {run.n_documents or 0:,} documents; "
            f"{arrivals:,} arrivals placed since. Stage times: {stages or '—'}.</p></footer>")


def _data_script(v: _View) -> str:
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


SCRIPT = r"""
(function () {
  var el = function (id) { return document.getElementById(id); };
  var read = function (id) { var n = el(id); return n ? JSON.parse(n.textContent) : null; };
  var D = read('report-data');
  var pad = function (n) { return (n < 10 ? '0' : '') + n; };
  var when = function (i) {
    var t = new Date((D.base + D.w[i] * 60) * 1000);
    return t.getUTCFullYear() + '-' + pad(t.getUTCMonth() + 1) + '-' + pad(t.getUTCDate()) + ' ' + pad(t.getUTCHours()) + ':' + pad(t.getUTCMinutes());
  };
  var fb = {}; if (D) D.fb.forEach(function (i) { fb[i] = 1; });
  var storyOf = {}; if (D) Object.keys(D.g).forEach(function (s) { D.g[s].forEach(function (i) { storyOf[i] = s; }); });
  var source = function (i) { return D.s.length && D.s[i] >= 0 ? D.src[D.s[i]] : ''; };
  function fillCard(card) {
    if (card.dataset.filled) return;
    card.dataset.filled = '1';
    var rows = D.g[card.dataset.story] || [];
    var box = document.createElement('div'); box.className = 'cardbody';
    var input = document.createElement('input'); input.type = 'search'; input.placeholder = 'filter these ' + rows.length + ' headlines';
    var count = document.createElement('span'); count.className = 'note';
    var list = document.createElement('ol');
    var toggle = document.createElement('button'); toggle.type = 'button'; toggle.className = 'order'; toggle.textContent = 'newest first';
    toggle.addEventListener('click', function () {
      var newest = toggle.textContent === 'newest first', items = Array.prototype.slice.call(list.children);
      items.sort(function (a, b) { return newest ? (D.w[+b.dataset.i] - D.w[+a.dataset.i]) : (+a.dataset.rank - +b.dataset.rank); });
      items.forEach(function (li) { list.appendChild(li); });
      toggle.textContent = newest ? 'core first' : 'newest first';
    });
    rows.forEach(function (i, rank) {
      var li = document.createElement('li');
      var tm = document.createElement('time'); tm.textContent = when(i) + (fb[i] ? ' (ingested)' : ''); li.appendChild(tm);
      var src = source(i);
      if (src) { var sp = document.createElement('span'); sp.className = 'src'; sp.textContent = src; li.appendChild(sp); }
      var url = D.u[i], t;
      if (url) { t = document.createElement('a'); t.href = url; t.rel = 'noopener noreferrer'; } else { t = document.createElement('span'); }
      t.textContent = D.t[i]; li.appendChild(t);
      li.dataset.text = (D.t[i] + ' ' + src).toLowerCase(); li.dataset.i = i; li.dataset.rank = rank;
      list.appendChild(li);
    });
    input.addEventListener('input', function () {
      var q = input.value.trim().toLowerCase(), shown = 0;
      for (var li = list.firstChild; li; li = li.nextSibling) { var ok = !q || li.dataset.text.indexOf(q) >= 0; li.hidden = !ok; shown += ok; }
      count.textContent = q ? ' ' + shown + ' of ' + rows.length : '';
    });
    box.appendChild(input); box.appendChild(toggle); box.appendChild(count); box.appendChild(list); card.appendChild(box);
  }
  document.querySelectorAll('details.card').forEach(function (c) {
    c.addEventListener('toggle', function () { if (c.open) fillCard(c); });
  });
  if (location.hash && location.hash.indexOf('#story-') === 0) {
    var row = document.querySelector(location.hash + ' details.card');
    if (row) { var tb = row.closest('tbody'); if (tb) tb.hidden = false; row.open = true; }
  }
  document.querySelectorAll('button.showmore').forEach(function (b) {
    b.addEventListener('click', function () { var tb = b.previousElementSibling.querySelector('tbody.more'); tb.hidden = !tb.hidden;
      b.textContent = tb.hidden ? b.dataset.label : 'show fewer stories'; });
    b.dataset.label = b.textContent;
  });
  if (!window.Plotly) return;  // each chart's place keeps its message
  document.documentElement.classList.add('has-plotly');
  var escHtml = function (s) { return s.replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); };
  var clip = function (s, n) { return s.length > n ? s.slice(0, n - 1) + '\u2026' : s; };
  function declutter(gd) {
    // keep labels in priority order where their real boxes overlap no kept one; hide the rest (they stay on hover)
    if (gd._declutter) return; gd._declutter = true;
    var anns = gd.layout.annotations || [], on = {};
    anns.forEach(function (a, i) { on['annotations[' + i + '].visible'] = true; });
    Plotly.relayout(gd, on).then(function () {
      var kept = [], off = {};
      var groups = Array.prototype.slice.call(gd.querySelectorAll('g.annotation'));
      groups.sort(function (a, b) { return (+a.dataset.index) - (+b.dataset.index); });
      groups.forEach(function (g) {
        var r = g.getBoundingClientRect();
        var hit = r.width === 0 || kept.some(function (k) { return !(r.right <= k.left || r.left >= k.right || r.bottom <= k.top || r.top >= k.bottom); });
        if (hit) off['annotations[' + g.dataset.index + '].visible'] = false; else kept.push(r);
      });
      return Object.keys(off).length ? Plotly.relayout(gd, off) : null;
    }).then(function () { gd._declutter = false; window.__mapLabelsReady = true; });
  }
  document.querySelectorAll('.plot[data-spec]').forEach(function (div) {
    var spec = read(div.dataset.spec), rowsOf = read('rows-' + div.id);
    if (rowsOf) rowsOf.forEach(function (rows, k) {
      spec.data[k].text = rows.map(function (i) {
        var s = storyOf[i], story = s !== undefined && D.n[s] ? D.n[s] : 'no story';
        return escHtml(clip(D.t[i], 100)) + '<br><span style="font-size:11px">' + when(i) + ' \u00b7 ' + escHtml(clip(story, 70)) + '</span>';
      });
    });
    Plotly.newPlot(div, spec.data, spec.layout, {displaylogo: false, responsive: true}).then(function () {
      if (div.id !== 'map') return;
      declutter(div);
      div.on('plotly_relayout', function (ev) {
        if (Object.keys(ev || {}).some(function (k) { return /^(xaxis|yaxis|autosize|width|height)/.test(k); })) declutter(div);
      });
      var timer; window.addEventListener('resize', function () { clearTimeout(timer); timer = setTimeout(function () { declutter(div); }, 300); });
    });
  });
})();
"""

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.2em auto;max-width:1400px;color:#222;padding:0 1em;line-height:1.35}
h1{font-size:22px;margin:.2em 0} h2{margin-top:1.4em;font-size:19px;border-bottom:1px solid #ddd;padding-bottom:.2em} h3{font-size:16px;margin:1.1em 0 .3em}
table{border-collapse:collapse;width:100%} table.stories{table-layout:fixed} td,th{border-bottom:1px solid #ececec;padding:3px 6px;text-align:left;vertical-align:top;font-size:13px}
th{background:#f6f6f6;font-weight:600} .num{text-align:right;white-space:nowrap} .grow{color:#1a7f37;font-weight:600}
.note{color:#666;font-size:12.5px} .note p{margin:.2em 0} .lede{font-size:17px;margin:.4em 0}
.nav a{margin-right:1em} .sections a{margin-right:1.1em} .sw,.dot{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.dot{border-radius:50%;width:9px;height:9px} details.card summary{cursor:pointer} details.card[open]{background:#fafafa}
.cardbody{padding:.4em .2em .6em 1.2em} .cardbody input{width:60%;padding:3px 6px;margin:.3em 0;font-size:13px}
.cardbody ol{margin:.3em 0;padding-left:1.6em;max-height:420px;overflow:auto} .cardbody li{margin:.15em 0}
.cardbody time{color:#555;font-variant-numeric:tabular-nums;margin-right:.6em} .cardbody .src{color:#7a4b00;margin-right:.6em}
ul.alerts{list-style:none;padding:0;margin:0} li.alert{padding:4px 0;border-bottom:1px solid #f0f0f0}
.badge{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;padding:1px 6px;border-radius:3px;background:#1f6feb;color:#fff;margin-right:.5em}
li.surging .badge{background:#d1242f} .showmore{margin:.3em 0;font-size:12px;cursor:pointer} .spark{display:block}
.figbox{position:relative} .nofig{background:#fff8e1;border:1px solid #f0d27a;padding:.8em 1em;border-radius:6px;color:#5c4400}
th.num{white-space:normal} col.c-story{width:50%} col.c-num{width:8%} col.c-time{width:12%} col.c-spark{width:10%}
svg.spark{max-width:100%} .plot{max-width:100%} td{overflow-wrap:anywhere}
@media (max-width:1000px){col.c-story{width:35%} col.c-num{width:10%} col.c-time{width:13%} col.c-spark{width:19%}
 td,th{padding:3px 4px}}
.has-plotly .nofig{display:none} .empty{background:#f6f8fa;border-radius:8px;padding:.6em 1.2em;margin-top:1em} footer{margin-top:2em}
"""


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
