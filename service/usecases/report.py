"""The report page of a run, from the history and the run's stored layout."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import state as run_state

if TYPE_CHECKING:
    from ..bootstrap import App


def write_report(app: App, run_id: int | None = None, out: Path | None = None, standalone: bool = False) -> Path:
    """Render a run's page from the SQLite history and its stored layout; refresh latest.html and index.html."""
    from ..report.page import render_report
    from ..report.publish import publish

    s = app.settings
    run = app.repo.run(run_id) if run_id else app.repo.latest_run()
    if run is None or run.status != "done":
        raise LookupError(f"no finished rebuild {'with id ' + str(run_id) if run_id else 'yet'}: run `newsclust rebuild` first")
    layout = run_state.load_layout(s.state_dir, run.id)
    html = render_report(app.repo, run, layout, max_points=s.report_max_points, seed=s.seed, standalone=standalone)
    latest = app.repo.latest_run()
    return publish(s.reports_dir, run.id, html, app.repo.done_runs(), is_latest=latest is not None and latest.id == run.id,
                   keep_runs=s.report_keep_runs, out=out, standalone=standalone).page
