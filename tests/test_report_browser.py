"""The report as a person opens it: headless Chromium from the file system, no network, untrusted text inert."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from service import usecases

from .conftest import write_csv, ingest_copies

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(__file__).resolve().parent / "output"
EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> Wildfire spreads'


@pytest.fixture(scope="module")
def report(tmp_path_factory, embedder, demo_days):
    from service.bootstrap import build_app
    from service.config import load_settings

    files, _ = demo_days
    app = build_app(load_settings(home=tmp_path_factory.mktemp("report"), env={}), embedder=embedder)
    ingest_copies(app, files[:3])
    usecases.rebuild(app, write_report_after=True)
    write_csv(app.settings.inbox / "evil.csv", [{"guid": "evil-1", "title": EVIL, "description": '"><svg onload=alert(1)>'}] * 1)
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
    assert "<script>window.__pwned" not in page and "onerror=\"window" not in page
    assert "&lt;script&gt;" in page
    assert "cdn.plot.ly" not in page and "https://" not in page.split("<script src=")[1][:40]
    assert f"run-{result.run_id}.html" in (reports / "index.html").read_text()


def test_past_runs_can_be_rendered_again(report, tmp_path):
    app, result = report
    out = usecases.write_report(app, result.run_id - 1, tmp_path / "old.html")
    assert "run " + str(result.run_id - 1) in out.read_text()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_report_in_headless_chromium(report, tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    app, result = report
    page_path = app.settings.reports_dir / "latest.html"
    errors, requests = [], []
    with sync_playwright() as p:
        # a fresh profile folder per run (Playwright's persistent context is how it takes --user-data-dir)
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, viewport={"width": 1400, "height": 1000},
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri())
        page.wait_for_function("() => document.getElementById('map') && document.getElementById('map').data", timeout=30000)
        points = page.evaluate("() => document.getElementById('map')._fullData.reduce((n, t) => n + (t._length || 0), 0)")
        pwned = page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")
        page.hover("#map")
        shot = page.screenshot(full_page=False)
        browser.close()
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "report.png").write_bytes(shot)
    assert not errors, errors
    assert all(u.startswith("file://") for u in requests), [u for u in requests if not u.startswith("file://")]
    assert pwned is None
    assert points == app.repo.count_documents()
    img = Image.open(io.BytesIO(shot)).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100 and len(img.resize((64, 64)).getcolors(4096) or []) > 20  # not blank
