"""ports.ReportPages: a run's page rendered from the history's reads (page.py) and written to the reports folder
(publish.py), with the settings the page takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..domain import Run
from ..ports import StoryReads


class HtmlPages:
    def __init__(self, reports_dir: Path, max_points: int, seed: int, keep_runs: int):
        self.reports_dir, self.max_points, self.seed, self.keep_runs = reports_dir, max_points, seed, keep_runs

    def has_page(self, run_id: int) -> bool:
        from .publish import run_pages

        return run_id in run_pages(self.reports_dir)

    def publish(self, reads: StoryReads, run: Run, layout: tuple[np.ndarray, np.ndarray] | None, done_runs: list[Run], *,
                is_latest: bool, out: Path | None = None, standalone: bool = False, held=None) -> Path:
        from .page import render_report
        from .publish import publish

        html = render_report(reads, run, layout, max_points=self.max_points, seed=self.seed, standalone=standalone, held=held)
        return publish(self.reports_dir, run.id, html, done_runs, is_latest=is_latest, keep_runs=self.keep_runs, out=out,
                       standalone=standalone).page
