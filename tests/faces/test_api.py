"""serve's query API through a real HTTP client, the CLI's queries beside a running serve, and the page that does
not wait for the map."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from ..conftest import CLI, env_for, ingest_copies, start_serve, stop_serve, write_csv


@pytest.fixture
def served(make_app, demo_days):
    """A home with two days clustered, and its API listening on a free loopback port."""
    from service import usecases
    from workers.api import ApiServer

    app = make_app()
    ingest_copies(app, demo_days[0][:2])
    maps: list = []
    usecases.rebuild(app, on_map_job=maps.append)
    server = ApiServer(app)
    url = server.start()
    try:
        yield app, url, maps
    finally:
        server.stop()


def test_api_answers_queries_and_refuses_bad_parameters_with_json(served):
    app, url, _ = served
    with httpx.Client(base_url=url, timeout=30) as http:
        found = http.get("/search", params={"q": "wildfire evacuations", "k": 3})
        assert found.status_code == 200
        body = found.json()
        assert body["k"] == 3 and 0 < len(body["hits"]) <= 3 and {"similarity", "title", "story_id", "topic_id"} <= set(body["hits"][0])
        story_id = next(h["story_id"] for h in body["hits"] if h["story_id"] not in (None, -1))
        story = http.get(f"/stories/{story_id}").json()
        assert story["story_id"] == story_id and story["headlines"]
        topic_id = app.stories.run_topics(app.runs.latest_run().id)[0].topic_id
        assert http.get(f"/topics/{topic_id}").json()["topic_id"] == topic_id
        st = http.get("/status").json()
        assert st["documents"] > 0 and st["stories"] == st["clusters"] > 0 and st["topics"] > 0
        assert http.get("/alerts").json() == {"alerts": []}  # the first rebuild sets the baseline
        assert http.get("/report/latest.html").status_code == 200
        assert http.get("/", follow_redirects=False).headers["location"].endswith("/report/latest.html")
        for path, params, code in [("/search", {}, 400), ("/search", {"q": "  "}, 400), ("/search", {"q": "x", "k": "ten"}, 400),
                                   ("/search", {"q": "x", "k": 0}, 400), ("/search", {"q": "x", "k": 10**9}, 400),
                                   ("/search", {"q": "x" * 5000}, 400), ("/stories/abc", {}, 400), ("/stories/987654", {}, 404),
                                   ("/topics/-5", {}, 404), ("/alerts", {"limit": "-1"}, 400), ("/nowhere", {}, 404)]:
            r = http.get(path, params=params)
            assert r.status_code == code, (path, params, r.text)
            assert set(r.json()) == {"error"} and "Traceback" not in r.text
        assert http.post("/search", params={"q": "x"}).status_code == 405  # read-only


def test_api_token_and_addresses(make_app):
    from service.config import SettingsError
    from workers.api import ApiServer, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(SettingsError, match="api_token"):
        ApiServer(make_app(api_host="0.0.0.0"))
    server = ApiServer(make_app(api_token="s3cret"))
    url = server.start()
    try:
        assert httpx.get(f"{url}/status").status_code == 401
        assert httpx.get(f"{url}/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/status", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        server.stop()


def test_the_page_is_published_before_the_map_is_refined(served):
    """The rebuild's page has the quick map; the job lays the refined map out later and publishes again."""
    from service import state

    app, _, maps = served
    run = app.runs.latest_run()
    assert len(maps) == 1 and maps[0].run_id == run.id
    page = app.settings.reports_dir / f"run-{run.id}.html"
    quick_ids, quick_xy = state.load_layout(app.settings.state_dir, run.id)
    assert page.exists() and len(quick_ids) == len(maps[0].doc_ids) and np.isfinite(quick_xy).all()
    before = page.stat().st_mtime_ns
    maps[0].run(app)
    ids, xy = state.load_layout(app.settings.state_dir, run.id)
    assert (ids == quick_ids).all() and not np.allclose(xy, quick_xy) and page.stat().st_mtime_ns >= before


def test_quick_layout_keeps_known_documents_and_puts_new_ones_beside_their_neighbours():
    from service.clustering.graph import knn
    from service.clustering.layout import quick_layout

    from ..conftest import unit_vectors

    vectors, labels = unit_vectors(np.random.default_rng(0), centres=3, per=30)
    neigh = knn(vectors, 8)
    previous = np.array([[10.0 * c, 0.0] for c in labels], np.float32) + np.random.default_rng(1).normal(0, 0.1, (len(labels), 2))
    previous[::7] = np.nan  # the last map did not have these
    xy, seeded = quick_layout(vectors, neigh, previous, np.random.default_rng(2))
    known = ~np.isnan(previous[:, 0])
    assert seeded and np.array_equal(xy[known], previous[known].astype(np.float32))
    new = np.flatnonzero(~known)
    assert np.all(np.abs(xy[new, 0] - 10.0 * labels[new]) < 1.0)  # beside their own cluster
    first, seeded = quick_layout(vectors, neigh, None, np.random.default_rng(2))  # no last map: principal plane
    assert not seeded and first.shape == (len(vectors), 2) and np.isfinite(first).all()
    centred = vectors - vectors.mean(axis=0)  # the plane of the two largest singular directions, up to each one's sign
    plane = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    assert np.allclose(np.abs(first), np.abs(plane), atol=1e-4)
    from service.clustering.layout import _principal_plane  # projected in chunks: the same map as in one piece

    assert np.array_equal(_principal_plane(vectors, np.random.default_rng(2), chunk=7), first)


@pytest.mark.slow
def test_cli_queries_go_through_serve_without_importing_torch(tmp_path):
    rows = [{"guid": f"g{i}", "title": t, "description": ""} for i, t in enumerate(
        ["Wildfire forces evacuations in the valley", "Firefighters battle wildfire near homes", "Wildfire smoke closes schools",
         "Central bank raises interest rates", "Interest rate hike rattles bond markets", "Bank lifts rates again"] * 2)]
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    write_csv(home / "inbox" / "a.csv", rows[:6])
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="1")
    try:
        for _ in range(120):  # the file is taken beside serve's start: search once its rows are stored
            st = json.loads(subprocess.run([*CLI, "--home", str(home), "status", "--json"], env=env_for(), capture_output=True,
                                           text=True, timeout=60, check=True).stdout)
            if st["documents"] >= 6:
                break
            time.sleep(0.25)
        assert st["api_url"].startswith("http://127.0.0.1:") and st["serving_pid"] == proc.pid
        # a relative --home finds the same serve: the API file holds the resolved home
        probe = ("import sys, runpy; sys.argv = ['newsclust', '--home', 'home', 'search', 'wildfire', '--k', '2', '--json']\n"
                 "try:\n    runpy.run_module('workers.console', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                 "print('HEAVY', sorted(m for m in ('torch', 'sentence_transformers', 'numba', 'sqlalchemy') if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env_for(), capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        hits = json.loads(out.stdout[: out.stdout.rindex("HEAVY")])
        assert len(hits) == 2 and "ildfire" in hits[0]["title"]
        assert out.stdout.strip().endswith("HEAVY []"), out.stdout
        bad = subprocess.run([*CLI, "--home", str(home), "story", "987654"], env=env_for(), capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "no story 987654" in bad.stdout
    finally:
        stop_serve(proc)
    assert not (home / "state" / "api.json").exists()  # gone with serve: the CLI reads directly again


def _cli(home, *args, **kw):
    return subprocess.run([*CLI, "--home", str(home), *args], env=env_for(), capture_output=True, text=True, timeout=300, **kw)


def test_reads_of_a_missing_home_fail_and_create_nothing(tmp_path):
    for command in (["status"], ["status", "--json"], ["export"], ["story", "1"], ["search", "x"], ["report"]):
        out = _cli(tmp_path / "nowhere", *command)
        assert out.returncode == 2 and "no home at" in out.stderr and "Traceback" not in out.stderr, command
    assert not (tmp_path / "nowhere").exists()


def test_help_says_what_the_options_and_the_export_file_are():
    from service.usecases.queries import EXPORT_COLUMNS

    status_help = subprocess.run([*CLI, "status", "--help"], env=env_for(), capture_output=True, text=True, timeout=60).stdout
    assert "--json" in status_help and "<bool>" not in status_help  # a flag, shown as one
    export_help = subprocess.run([*CLI, "export", "--help"], env=env_for(), capture_output=True, text=True, timeout=60).stdout
    assert ",".join(EXPORT_COLUMNS) in " ".join(export_help.split()).replace(", ", ",")


@pytest.mark.slow
def test_rough_edges_of_reads_on_a_real_home(tmp_path):
    """A huge title, a big story, an export into a missing folder, status wording: one small home for all of them."""
    home = tmp_path / "home"
    huge = "Wildfire " + "ash " * 50_000  # 200 KB: past the csv module's default field limit
    rows = [{"guid": "huge", "title": huge, "description": ""}]
    rows += [{"guid": f"w{i}", "title": f"Wildfire forces evacuations in the valley, report {i}", "description": ""} for i in range(30)]
    rows += [{"guid": f"b{i}", "title": f"Central bank raises interest rates, day {i}", "description": ""} for i in range(30)]
    src = write_csv(tmp_path / "rows.csv", rows)
    assert _cli(home, "ingest", str(src)).returncode == 0
    assert _cli(home, "rebuild").returncode == 0

    found = _cli(home, "search", "wildfire ash", "--k", "3")
    assert found.returncode == 0 and max(len(line) for line in found.stdout.splitlines()) < 400

    out = _cli(home, "export", "--out", str(tmp_path / "new" / "folder" / "all.csv"))
    assert out.returncode == 0, out.stderr
    with (tmp_path / "new" / "folder" / "all.csv").open(newline="", encoding="utf-8") as fh:
        exported = list(csv.DictReader(fh))  # the default field limit holds
    assert len(exported) == len(rows) and next(r for r in exported if r["guid"] == "huge")["title"].startswith("Wildfire ash")

    st = json.loads(_cli(home, "status", "--json").stdout)
    assert st["stories"] == st["clusters"] and "topics" in st and st["noise_headlines"] == st["noise"]
    assert "headlines in no story" in _cli(home, "status").stdout

    big = max((r for r in exported if r["story_id"] not in ("", "-1")), key=lambda r: sum(x["story_id"] == r["story_id"] for x in exported))
    size = sum(r["story_id"] == big["story_id"] for r in exported)
    shown = _cli(home, "story", big["story_id"], "--headlines", "3").stdout
    newest = min(5, size)  # the five newest are listed beside the core-first headlines
    assert sum(line.startswith("    ") for line in shown.splitlines()) == 3 + newest and f"{size} (the 3 most central shown" in shown
    every = _cli(home, "story", big["story_id"], "--all").stdout
    assert sum(line.startswith("    ") for line in every.splitlines()) == size + newest


@pytest.mark.slow
def test_an_idle_lite_client_draws_no_goaway_from_its_server(tmp_path):
    """pymilvus pings every 10 s by default; Milvus Lite's server sends `GOAWAY too_many_pings` after about 30 s of
    that, logged by gRPC's C core as an ERROR line. Our Lite clients do not ping."""
    probe = ("import sys, time\nfrom service.adapters.milvus import MilvusStore\n"
             f"s = MilvusStore({str(tmp_path / 'm.db')!r}, 'c', 4)\ntime.sleep(40)\nprint(s.client.has_collection('c'))\n")
    out = subprocess.run([sys.executable, "-c", probe], env=env_for(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "True" in out.stdout, out.stderr
    assert "GOAWAY" not in out.stderr and "too_many_pings" not in out.stderr, out.stderr


def test_a_map_job_keeps_only_the_fitted_rows_and_lays_out_the_same_map():
    from service.clustering.graph import knn
    from service.clustering.layout import fit_sample_rows, layout_2d

    from ..conftest import unit_vectors

    vectors, _ = unit_vectors(np.random.default_rng(0), centres=4, per=30)
    neigh = knn(vectors, 8)
    sample = fit_sample_rows(len(vectors), seed=3, fit_sample=60)
    whole = layout_2d(vectors, seed=3, fit_sample=60, neigh=neigh)
    kept = layout_2d(vectors[sample], seed=3, neigh=neigh, sample=sample)
    assert len(sample) == 60 and kept.shape == (len(vectors), 2) and np.allclose(whole, kept)


def test_a_vector_copy_written_under_another_spelling_of_the_home_is_read(tmp_path, monkeypatch):
    from service.bootstrap import copy_source

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "h" / "state" / "vectors-headlines"
    folder.mkdir(parents=True)
    (folder / "source.json").write_text(json.dumps({"source": "h/milvus.db#headlines", "dim": 384}))  # serve ran with --home h
    assert copy_source(folder, str(tmp_path / "h" / "milvus.db"), "headlines") == "h/milvus.db#headlines"
    assert copy_source(folder, str(tmp_path / "other" / "milvus.db"), "headlines") == f"{tmp_path / 'other' / 'milvus.db'}#headlines"
    assert copy_source(folder, "http://host:19530", "headlines") == "http://host:19530#headlines"
