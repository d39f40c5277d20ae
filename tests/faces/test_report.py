"""The report's parts without a browser: news time and the stream's span, per-story numbers, labels that fit,
lineage that shows only change, empty and tiny homes, retention and an index of pages that exist."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from service.adapters.sql import report_queries as rq
from service.domain import Run
from service.report import model
from service.report.figures import lineage_figure, map_figure, timeline_figure
from service.report.page import render_index, render_report
from service.report.sections import lineage_section
from service.report.view import ReportView
from service.report.publish import prune_run_pages, publish, run_pages, write_index

from ..conftest import write_csv


def dt(values):
    return np.array([v if v else "NaT" for v in values], "datetime64[s]")


def test_stream_span_ignores_a_decade_old_row_and_says_which_rows_fell_back():
    pub = [f"2026-01-{d:02d}T{h:02d}:00" for d in range(5, 15) for h in range(0, 24, 3)] + ["2016-01-01T00:00", None]
    ing = ["2026-02-01T00:00"] * (len(pub) - 1) + ["2026-01-10T12:00"]
    st = model.stream_time(dt(pub), dt(ing))
    assert st.start == np.datetime64("2026-01-05T00:00") and st.end == np.datetime64("2026-01-14T21:00")
    assert st.outlier.sum() == 1 and st.outlier[-2]
    assert st.n_fallback == 1 and st.time[-1] == np.datetime64("2026-01-10T12:00")
    assert st.bin == model.DAY
    edges, step = st.bins(5)
    assert len(edges) <= 5 and edges[0] <= st.start and edges[-1] + step > st.end


def test_story_stats_count_the_last_24h_of_stream_time_not_the_wall_clock():
    times = dt(["2026-01-01T00:00", "2026-01-01T05:00", "2026-01-03T01:00", "2026-01-03T20:00", "2026-01-03T23:00"])
    story = np.array([1, 1, 1, 2, -1])
    st = model.stream_time(times, times)
    s = model.story_stats(story, st)
    at = s.index()
    assert s.recent[at[1]] == 1 and s.recent[at[2]] == 1 and s.recent[at[-1]] == 1
    assert s.first[at[1]] == np.datetime64("2026-01-01T00:00") and s.last[at[1]] == np.datetime64("2026-01-03T01:00")
    assert s.spark[at[1]].sum() == 3 and s.spark.shape[1] <= model.MAX_SPARK_BINS


def test_point_size_and_labels_that_fit():
    small, big = model.point_size(50), model.point_size(50_000)
    assert small[0] > 3 * big[0] and small[1] > big[1]
    cands = [("A long story title number one", 0.0, 0.0), ("Another story right on top of it", 0.01, 0.0),
             ("Far away story", 10.0, 10.0)]
    assert model.label_layout(cands, np.array([0.0, 0.0]), np.array([10.0, 10.0])) == [True, False, True]


def test_stories_coloured_within_their_topics_hue():
    hues = model.topic_colours([7, 3])
    a, b = model.shade(hues[7], 0), model.shade(hues[7], 1)
    assert a != b and model.shade(hues[3], 0) != a


def test_figures_escape_and_clip_the_timeline_to_the_stream():
    start, end = np.datetime64("2026-01-05T06:00"), np.datetime64("2026-01-09T18:00")
    edges = np.arange(np.datetime64("2026-01-05"), np.datetime64("2026-01-10"), model.DAY).astype("datetime64[s]")
    fig = timeline_figure(edges, model.DAY, np.ones(5, int), [("<b>x</b>", "#123456", np.ones(5, int))], start, end, "day")
    assert fig.layout.xaxis.range == ("2026-01-05 06:00:00", "2026-01-09 18:00:00")
    assert all(start <= np.datetime64(x) <= end for x in fig.data[0].x)
    assert "&lt;b&gt;" in fig.data[1].name
    xy = np.random.default_rng(0).normal(size=(6, 2))
    m = map_figure(xy, ["#111111", "#222222", "#111111", "#b9b9b9", "#333333", "#333333"],
                   [("topic <i>", np.array([0, 1, 2])), ("t2", np.array([4, 5])), ("noise", np.array([3]))], None,
                   [("Story \"A\"", 0.0, 0.0)], 8, 0.9)
    assert len(m.data) == 3 and m.data[0].name == "topic &lt;i&gt;" and m.layout.annotations[0].text == "<b>Story &#34;A&#34;</b>"
    assert m.data[1].marker.color == "#333333"  # one shade: one colour, not an array


def _view(stories: dict[int, int]) -> ReportView:
    """A view with stories {id: topic} of five headlines each, for the lineage section."""
    ids = sorted(stories)
    n = 5 * len(ids)
    docs = rq.ReportDocs(np.arange(n), np.repeat(ids, 5), np.repeat([stories[i] for i in ids], 5), np.ones(n, np.float32),
                         np.zeros(n, bool), dt(["2026-01-01T00:00"] * n), dt(["2026-01-02T00:00"] * n), ["t"] * n, [None] * n, [None] * n)
    st = model.stream_time(docs.published, docs.ingested)
    topics = {t: rq.TopicRow(t, 5, 1, f"topic {t}", []) for t in set(stories.values())}
    return ReportView(docs, {s: rq.StoryRow(s, t, 5, f"story {s}", []) for s, t in stories.items()}, topics, st,
                 model.story_stats(docs.story, st))


def test_lineage_draws_only_what_changed():
    v = _view({1: 10, 2: 10, 3: 11, 4: 11})
    still = rq.Lineage(5, [(1, 1, 50), (2, 2, 40), (3, 3, 30), (-1, 4, 3)], [], {1: "a", 2: "b", 3: "c"}, {1: 10, 2: 10, 3: 11})
    html = lineage_section(still, v)
    assert "no story or topic was born, died, split, merged or moved" in html and "spec-lineage" not in html
    split = rq.Lineage(5, [(1, 1, 30), (1, 4, 20), (2, 2, 40), (3, 3, 30)], [rq.ChangeEvent("story", "split", 1, [], [1, 4])],
                       {1: "a", 2: "b", 3: "c"}, {1: 10, 2: 10, 3: 11})
    html = lineage_section(split, v)
    spec = json.loads(html.split("id=spec-lineage>")[1].split("</script>")[0])
    link = spec["data"][0]["link"]
    assert len(link["value"]) == 2  # the split's two flows; the unchanged stories 2 and 3 are not drawn
    moved = rq.Lineage(5, [(1, 1, 30), (2, 2, 40)], [rq.ChangeEvent("story", "moved", 2, [11], [10])], {1: "a", 2: "b"},
                       {1: 10, 2: 11}, {11: "old topic"})
    html = lineage_section(moved, v)
    assert "moved from topic old topic to topic 10" in html and "spec-lineage" in html


def test_lineage_figure_has_one_link_per_flow():
    fig = lineage_figure([(1, 1, 3), (1, 2, 2)], {1: "#1 a"}, {1: "#1 a", 2: "#2 b"}, {1: "#aa0000", 2: "#00aa00"})
    assert list(fig.data[0].link.value) == [3, 2]


def _run(run_id: int, n: int = 0) -> Run:
    return Run(id=run_id, status="done", finished_at=datetime(2026, 1, 1), n_documents=n, n_stories=0, n_noise=0)


def test_an_empty_home_gets_a_page_that_says_so(make_app):
    app = make_app()
    html = render_report(app.stories, _run(1), None)
    assert "Nothing to show yet" in html and "spec-map" not in html and "spec-timeline" not in html
    assert "No alerts yet" in html


def test_a_tiny_home_gets_words_not_empty_axes(make_app):
    from service import usecases

    app = make_app()
    write_csv(app.settings.inbox / "few.csv", [{"guid": f"g{i}", "title": t, "published_at": f"2026-01-0{i + 1}T10:00"}
                                               for i, t in enumerate(["Storm hits coast", "Bank raises rates", "Team wins cup"])])
    usecases.ingest_file(app, app.settings.inbox / "few.csv")
    r = usecases.rebuild(app, write_report_after=False)
    html = render_report(app.stories, app.runs.run(r.run_id), None)
    assert "Too few headlines for stories yet" in html and "spec-map" not in html
    standalone = render_report(app.stories, app.runs.run(r.run_id), None, standalone=True)
    assert "<script src=\"plotly.min.js\">" not in standalone and len(standalone) > 3_000_000


def test_retention_keeps_the_last_pages_and_the_index_links_only_those(tmp_path):
    runs = [SimpleNamespace(id=i, finished_at=datetime(2026, 1, i), n_documents=10, n_stories=1, n_noise=0) for i in range(6, 0, -1)]
    for i in range(1, 6):
        publish(tmp_path, i, f"<html>run {i}</html>", runs, is_latest=False, keep_runs=0)
    out = publish(tmp_path, 6, "<html>run 6</html>", runs, is_latest=True, keep_runs=3)
    assert sorted(run_pages(tmp_path)) == [4, 5, 6] and len(out.removed) == 3
    assert (tmp_path / "latest.html").read_text() == "<html>run 6</html>" and (tmp_path / "plotly.min.js").exists()
    index = (tmp_path / "index.html").read_text()
    assert "run-6.html" in index and "run-4.html" in index and "run-3.html" not in index and "3 older run pages not kept" in index
    (tmp_path / "run-5.html").unlink()
    write_index(tmp_path, runs)
    assert "run-5.html" not in (tmp_path / "index.html").read_text()
    assert prune_run_pages(tmp_path, 0) == []  # 0 keeps all
    assert "run-1.html" in render_index(runs)  # without `existing`, as before


@pytest.mark.parametrize("extra,url,expected", [
    ('{"publisher": "Reuters"}', None, "Reuters"), ('{"Source": " AP "}', "http://x.org/a", "AP"),
    (None, "https://www.example.com/story", "example.com"), ("{}", None, None), ("not json", None, None),
])
def test_source_of_a_headline(extra, url, expected):
    assert rq.source_of(extra, url) == expected


def test_a_row_dated_far_ahead_is_listed_at_its_claimed_time_never_at_its_ingest_time():
    """Issue 25: a 2999 row had no published time, so its ingest time (today) stretched a 2014 stream's span."""
    dt = lambda xs: np.array(xs, "datetime64[s]")  # noqa: E731
    published = dt(["2014-03-10T08:00", "2014-03-10T09:00", "2014-03-11T10:00", "NaT"])
    ingested = dt(["2026-12-04T20:00"] * 4)
    future = dt(["NaT", "NaT", "NaT", "2999-01-01T00:00"])
    st = model.stream_time(published, ingested, future)
    assert str(st.start) == "2014-03-10T08:00:00" and str(st.end) == "2014-03-11T10:00:00"
    assert st.outlier.tolist() == [False, False, False, True] and str(st.time[3]) == "2999-01-01T00:00:00" and st.n_fallback == 0


def test_the_page_reads_the_run_as_the_run_assignments_view_does(tmp_path):
    """The page's run documents and lineage flows, resolved in numpy (and the flows from labels the rebuild holds),
    are the rows the run_assignments view gives: changed rows only, exits and arrivals placed between rebuilds."""
    from sqlalchemy import text

    from ..adapters.test_changed_assignments import assignment_stream, play_history

    repo, run_ids = play_history(f"sqlite:///{tmp_path / 'h.sqlite'}", False, assignment_stream(seed=3, n_docs=300, n_runs=5))
    view_docs = """SELECT a.document_id, a.cluster_id, COALESCE(a.topic_id, -1), a.probability, a.assigned_by = 'predict', d.title
                   FROM run_assignments a JOIN documents d ON d.id = a.document_id WHERE a.run_id = :r
                   ORDER BY CASE WHEN a.assigned_by = 'rebuild' THEN 0 ELSE 1 END, a.assignment_id"""
    view_flows = """SELECT p.cluster_id, n.cluster_id, COUNT(*) FROM run_assignments p
                    JOIN run_assignments n ON n.document_id = p.document_id AND n.run_id = :r AND n.assigned_by = 'rebuild'
                    WHERE p.run_id = :p AND p.assigned_by = 'rebuild' AND NOT (p.cluster_id = -1 AND n.cluster_id = -1)
                    GROUP BY p.cluster_id, n.cluster_id"""
    for prev, run in zip([None, *run_ids], run_ids):
        with repo.engine.connect() as c:
            latest = {r[0]: r for r in c.execute(text(view_docs), {"r": run})}  # later rows (arrivals) win
            flows = sorted((tuple(r) for r in c.execute(text(view_flows), {"r": run, "p": prev})), key=lambda f: (-f[2], f[0], f[1])) if prev else []
        rows = [latest[k] for k in sorted(latest)]
        docs = repo.stories.report_documents(run)
        assert docs.ids.tolist() == [r[0] for r in rows]
        assert docs.story.tolist() == [r[1] for r in rows] and docs.topic.tolist() == [r[2] for r in rows]
        assert np.array_equal(docs.probability, np.array([r[3] for r in rows], np.float32))
        assert docs.predicted.tolist() == [bool(r[4]) for r in rows] and docs.titles == [r[5] for r in rows]
        lin = repo.stories.lineage(run)
        assert lin.flows == flows
        held = {r: repo.runs.run_labels(r) for r in (run, prev) if r}
        assert repo.stories.lineage(run, held).flows == flows
