"""The report as a person opens it: headless Chromium from the file system, no network, untrusted text inert.

The stream carries one headline dated a decade before the rest: the timeline must not stretch to it.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from service import usecases

from ..conftest import ingest_copies, write_csv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(__file__).resolve().parent / "output"
EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> Wildfire spreads'
OLD = "Archive: harbour council approves the old pier plan"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def report(tmp_path_factory, embedder, demo_days):
    from service.bootstrap import App
    from service.config import load_settings

    files, _ = demo_days
    app = App(load_settings(home=tmp_path_factory.mktemp("report"), env={}), embedder=embedder)
    ingest_copies(app, files[:3])
    usecases.rebuild(app, write_report_after=True)
    write_csv(app.settings.inbox / "evil.csv", [
        {"guid": "evil-1", "title": EVIL, "description": '"><svg onload=alert(1)>', "published_at": "2026-01-07T10:00"},
        {"guid": "old-1", "title": OLD, "description": "", "published_at": "2016-01-04T09:00"},  # a decade-old row
    ])
    usecases.ingest_file(app, app.settings.inbox / "evil.csv")
    ingest_copies(app, files[3:])
    result = usecases.rebuild(app, write_report_after=True)
    yield app, result
    app.close()


def test_report_files_and_escaping(report):
    app, result = report
    reports = app.settings.reports_dir
    assert {"latest.html", "index.html", "plotly.min.js", f"run-{result.run_id}.html"} <= {p.name for p in reports.iterdir()}
    page = (reports / "latest.html").read_text()
    # headlines are HTML-escaped in the markup; in the page's JSON tables they are JSON strings that cannot close the element
    markup = re.sub(r"<script type=application/json id=[\w-]+>.*?</script>", "", page, flags=re.S)
    assert "<script>window.__pwned" not in markup and "onerror=\"window" not in markup
    assert "<script>window.__pwned=1<\\/script>" in page  # there, as inert JSON text
    assert "cdn.plot.ly" not in page and "https://" not in page.split("<script src=")[1][:40]
    assert f"run-{result.run_id}.html" in (reports / "index.html").read_text()
    assert OLD in page and "left off the charts" in page  # the outlier is listed, not drawn


def test_past_runs_can_be_rendered_again(report, tmp_path):
    app, result = report
    out = usecases.write_report(app, result.run_id - 1, tmp_path / "old.html")
    assert "run " + str(result.run_id - 1) in out.read_text()


def _browser(p, tmp_path):
    # a fresh profile folder per run (Playwright's persistent context is how it takes --user-data-dir)
    return p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                                                viewport={"width": 1400, "height": 1000}, args=FLAGS)


def _watch(page):
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    return errors, requests


def _published_span(app) -> tuple[str, str]:
    """The stream's published range without the decade-old row."""
    from sqlalchemy import text

    with app.engine.connect() as c:
        lo, hi = c.execute(text("SELECT MIN(published_at), MAX(published_at) FROM documents WHERE published_at >= '2020-01-01'")).one()
    return str(lo)[:19], str(hi)[:19]


@pytest.mark.browser
@needs_chromium
def test_report_in_headless_chromium(report, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    app, result = report
    page_path = app.settings.reports_dir / "latest.html"
    with sync_playwright() as p:
        browser = _browser(p, tmp_path)
        page = browser.new_page()
        errors, requests = _watch(page)
        page.goto(page_path.as_uri())
        page.wait_for_function("() => window.__mapLabelsReady === true", timeout=30000)
        points = page.evaluate("() => document.getElementById('map')._fullData.reduce((n, t) => n + (t._length || 0), 0)")
        pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
        x_range = page.evaluate("() => document.getElementById('timeline')._fullLayout.xaxis.range")
        boxes = page.evaluate("""() => [...document.querySelectorAll('#map g.annotation')].map(g => {
            const r = g.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom, g.textContent]; })""")
        fallback_shown = page.evaluate("() => [...document.querySelectorAll('.nofig')].some(e => e.offsetParent !== null)")
        # a story card: every headline, a filter box that filters
        card = page.locator("details.card").first
        card.locator("summary").click()
        card.locator("li").first.wait_for(timeout=10000)  # the card fills its list when opened (a toggle event, async)
        n_items = card.locator("li").count()
        card.locator("input").fill("zzzz-no-such-headline")
        hidden_after = card.locator("li:visible").count()
        page.hover("#map")
        shot = page.screenshot(full_page=False)
        browser.close()
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "report.png").write_bytes(shot)
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), [u for u in requests if not u.startswith("file://")]
    assert pwned is None
    assert points == app.stories.status().documents
    assert not fallback_shown
    # the timeline's x range lies within the stream's published range: the decade-old row does not stretch it
    lo, hi = _published_span(app)
    assert lo <= x_range[0][:19] and x_range[1][:19] <= hi, (x_range, lo, hi)
    # map labels: some, and no two overlap on screen
    assert len(boxes) >= 3, boxes
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    assert n_items >= 5 and hidden_after == 0
    img = Image.open(io.BytesIO(shot)).convert("L")
    lo_px, hi_px = img.getextrema()
    assert hi_px - lo_px > 100 and len(img.resize((64, 64)).getcolors(4096) or []) > 20  # not blank


@pytest.mark.browser
@needs_chromium
def test_standalone_file_renders_alone_and_plain_page_says_why_not(report, tmp_path):
    from playwright.sync_api import sync_playwright

    from service.report.page import render_report
    from service.report.publish import publish
    from service.state import load_layout

    app, result = report
    run = app.runs.run(result.run_id)
    alone = tmp_path / "mail"
    alone.mkdir()
    html = render_report(app.stories, run, load_layout(app.settings.state_dir, run.id), standalone=True)
    publish(alone, run.id, html, [], is_latest=True, out=alone / "report.html", standalone=True)
    assert [p.name for p in alone.iterdir()] == ["report.html"]
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(app.settings.reports_dir / "latest.html", plain / "latest.html")  # copied without plotly.min.js
    with sync_playwright() as p:
        browser = _browser(p, tmp_path)
        page = browser.new_page()
        errors, requests = _watch(page)
        page.goto((alone / "report.html").as_uri())
        page.wait_for_function("() => window.__mapLabelsReady === true", timeout=30000)
        drawn = page.evaluate("() => ['map', 'timeline'].map(id => document.getElementById(id).querySelectorAll('.main-svg').length)")
        page2 = browser.new_page()
        page2.goto((plain / "latest.html").as_uri())
        page2.wait_for_load_state("load")
        message = page2.evaluate("() => [...document.querySelectorAll('.nofig')].filter(e => e.offsetParent !== null).map(e => e.textContent)")
        cards_work = page2.evaluate("() => { const d = document.querySelector('details.card'); d.open = true; return true; }")
        page2.wait_for_timeout(200)
        card_items = page2.locator("details.card").first.locator("li").count()
        browser.close()
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests)
    assert all(n > 0 for n in drawn), drawn
    assert message and "plotly" in message[0]  # words in place of blank space
    assert cards_work and card_items > 0  # headlines still readable without plotly.js


@pytest.mark.browser
@needs_chromium
def test_every_index_link_resolves_after_retention(report, tmp_path):
    from playwright.sync_api import sync_playwright

    from service.report.publish import prune_run_pages, run_pages, write_index

    app, result = report
    folder = tmp_path / "reports"
    shutil.copytree(app.settings.reports_dir, folder)
    removed = prune_run_pages(folder, keep=1, protect={result.run_id})
    assert removed and set(run_pages(folder)) == {result.run_id}
    write_index(folder, app.runs.done_runs())
    with sync_playwright() as p:
        browser = _browser(p, tmp_path)
        page = browser.new_page()
        errors, _ = _watch(page)
        page.goto((folder / "index.html").as_uri())
        hrefs = page.evaluate("() => [...document.querySelectorAll('a')].map(a => a.href)")
        titles = []
        for h in hrefs:
            page.goto(h)  # a missing file raises net::ERR_FILE_NOT_FOUND
            titles.append((h, page.title()))
        browser.close()
    assert hrefs and all(Path(unquote(urlparse(h).path)).is_file() for h in hrefs), hrefs
    assert all(t.startswith("newsclust") for _, t in titles), titles
    assert not [e for e in errors if "ERR_FILE_NOT_FOUND" in e], errors


@pytest.mark.browser
@needs_chromium
def test_page_fits_an_800px_window(report, tmp_path):
    """No sideways scroll, no story-table header spilling into the next, no sparkline cut by its cell; each topic
    header says a keyword once."""
    from playwright.sync_api import sync_playwright

    app, _ = report
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
                                                       viewport={"width": 800, "height": 900}, args=FLAGS)
        page = browser.new_page()
        page.goto((app.settings.reports_dir / "latest.html").as_uri())
        page.wait_for_function("() => window.__mapLabelsReady === true", timeout=30000)
        fit = page.evaluate("""() => {
          const de = document.documentElement;
          const spills = [...document.querySelectorAll('table.stories thead th')].filter(t => {
            const r = document.createRange(); r.selectNodeContents(t);
            return r.getBoundingClientRect().right > t.getBoundingClientRect().right + 0.5; }).map(t => t.textContent);
          const cut = [...document.querySelectorAll('svg.spark')].filter(s =>
            s.getBoundingClientRect().right > s.parentElement.getBoundingClientRect().right + 0.5).length;
          const headers = [...document.querySelectorAll('section.topic h3')].map(h => h.textContent);
          return {scroll: de.scrollWidth - de.clientWidth, spills, cut, headers}; }""")
        browser.close()
    assert fit["scroll"] <= 0 and not fit["spills"] and fit["cut"] == 0, fit
    for header in fit["headers"]:
        words = [w.strip() for part in header.split("·") for w in part.split(",") if w.strip() and not w.strip()[0].isdigit()]
        named = [w for w in words if "headlines" not in w and "stor" not in w and "in 24 h" not in w]
        assert len(named) == len(set(named)), header
