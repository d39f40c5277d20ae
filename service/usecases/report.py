"""The report page of a run, from the history and the run's stored layout; the map published fast, refined after.

The rebuild's page does not wait for the map: UMAP took 25-84 s of rebuilds whose clustering took under 1.5 s
(870 to 6k headlines, 2 busy cores), 51 s at 100k. So the page is published right after the commit with a quick
map (documents the last map had at their old positions, new ones at the mean of their placed neighbours), and a
MapJob refines the layout afterwards and publishes the page again: serve runs it in a background thread, a
one-shot `rebuild` after printing its answer, the demo once at the end.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..sorted_keys import find_rows

if TYPE_CHECKING:
    from ..domain import Neighbours
    from ..ports import App, HeldLabels

log = logging.getLogger("newsclust")


def write_report(app: App, run_id: int | None = None, out: Path | None = None, standalone: bool = False,
                 held: HeldLabels | None = None) -> Path:
    """Render a run's page from the history and its stored layout; refresh latest.html and index.html.
    held: story labels by run id the caller holds in memory (ports.HeldLabels), not read back."""
    run = app.runs.run(run_id) if run_id else app.runs.latest_run()
    if run is None or run.status != "done":
        raise LookupError(f"no finished rebuild {'with id ' + str(run_id) if run_id else 'yet'}: run `newsclust rebuild` first")
    latest = app.runs.latest_run()
    return app.pages.publish(app.stories, run, app.run_files.load_layout(run.id), app.runs.done_runs(),
                             is_latest=latest is not None and latest.id == run.id, out=out, standalone=standalone, held=held)


def write_cut_off_page(app: App) -> str | None:
    """At a serving start: the latest committed run whose page a stop cut off (SIGTERM during the map or the page,
    after the commit) gets its page now, so latest.html is not a run behind. Returns what was done, for the log."""
    run = app.runs.latest_run()
    if run is None or app.pages.has_page(run.id):
        return None
    has_map = app.run_files.load_layout(run.id) is not None
    write_report(app, run.id)
    return (f"run {run.id}'s page was cut off by the last stop: written now"
            + ("" if has_map else " (its map comes with the next rebuild)"))


@dataclass
class MapJob:
    """The refined map of a committed run, to compute after its page is out: everything the layout needs, held in
    memory so the job never reads the stores (it runs beside ingests and the next rebuild, without their lock)."""

    run_id: int
    doc_ids: np.ndarray
    sample: np.ndarray  # the rows UMAP is fitted on (layout.fit_sample_rows)
    sample_vectors: np.ndarray  # their vectors only: the rest are placed over the graph
    neigh: Neighbours
    init: np.ndarray | None  # the quick map where the last map seeded it, else None (UMAP's spectral start)
    seed: int

    def run(self, app: App, publish_lock=None, compute=None) -> Path:
        """Lay the map out, store it, publish the run's page again (its path). publish_lock (serve's write lock)
        is held only while the page is written, never during the layout. compute(fn, args, kwargs) runs the layout
        elsewhere (serve: a worker process, so UMAP's compiled loops do not hold this process's GIL)."""
        from ..clustering.layout import layout_2d

        t0 = time.perf_counter()
        kwargs = {"seed": self.seed, "init": self.init, "neigh": self.neigh, "sample": self.sample}
        xy = layout_2d(self.sample_vectors, **kwargs) if compute is None else compute(layout_2d, (self.sample_vectors,), kwargs)
        app.run_files.save_layout(self.run_id, self.doc_ids, xy)
        log.info("run %d: map of %d documents refined in %.1f s", self.run_id, len(self.doc_ids), time.perf_counter() - t0)
        if publish_lock is None:
            return write_report(app, self.run_id)
        with publish_lock:
            return write_report(app, self.run_id)


def publish_quick_map(app: App, prev_run, run_id: int, doc_ids: np.ndarray, vectors: np.ndarray, neigh: Neighbours,
                      on_map_job: Callable[[MapJob], None], held: HeldLabels | None = None) -> str:
    """Store the quick map, publish the page, and hand the refinement to on_map_job. held: the rebuild's story labels
    and the last run's (ports.HeldLabels), so the page's lineage does not read both runs back."""
    from ..clustering.layout import fit_sample_rows, quick_layout

    s = app.settings
    previous = _previous_positions(app, prev_run, doc_ids)
    xy, seeded = quick_layout(vectors, neigh, previous, np.random.default_rng(s.seed))
    app.run_files.save_layout(run_id, doc_ids, xy)
    sample = fit_sample_rows(len(doc_ids), s.seed)
    job = MapJob(run_id, doc_ids, sample, np.ascontiguousarray(vectors[sample]), neigh, xy if seeded else None, s.seed)
    page = str(write_report(app, run_id, held=held))
    on_map_job(job)
    return page


def _previous_positions(app: App, prev_run, doc_ids: np.ndarray) -> np.ndarray | None:
    """(n, 2): the last map's coordinates of these documents, NaN for those it did not have; None without a last map."""
    if prev_run is None:
        return None
    stored = app.run_files.load_layout(prev_run.id)
    if stored is None:
        return None
    prev_ids, prev_xy = stored
    rows, found = find_rows(prev_ids, doc_ids)
    previous = np.full((len(doc_ids), 2), np.nan, np.float32)
    previous[found] = prev_xy[rows[found]]
    return previous
