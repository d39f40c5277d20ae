"""Report files on disk: run pages, latest.html, index.html, plotly.js beside them, retention of old run pages.

Every file is written atomically (temp file, then rename). The index links only pages that exist.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write
from .page import render_index

RUN_PAGE = re.compile(r"^run-(\d+)\.html$")


@dataclass
class Published:
    page: Path  # the run's page (or the --out file)
    removed: list[Path]  # run pages retention dropped


def write_plotly_js(folder: Path) -> Path:
    """plotly.js beside the reports, once: pages reference it relatively and open offline."""
    from plotly.offline import get_plotlyjs

    target = folder / "plotly.min.js"
    if not target.exists():
        atomic_write(target, get_plotlyjs())
    return target


def run_pages(folder: Path) -> dict[int, Path]:
    """The run pages present in a reports folder, by run id."""
    if not folder.is_dir():
        return {}
    return {int(m.group(1)): p for p in folder.iterdir() if (m := RUN_PAGE.match(p.name)) and p.is_file()}


def prune_run_pages(folder: Path, keep: int, protect: set[int] = frozenset()) -> list[Path]:
    """Keep the newest `keep` run pages (0 or less: keep all) plus any in `protect`; delete the rest."""
    if keep <= 0:
        return []
    pages = run_pages(folder)
    newest = set(sorted(pages, reverse=True)[:keep]) | set(protect)
    removed = []
    for run_id, path in sorted(pages.items()):
        if run_id not in newest:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _same_file(page: Path, target: Path, html: str) -> None:
    """target made the page's twin: a hard link renamed into place (the page is written once: 7 MB and an fsync at
    100k documents), or, where the file system has no hard links, a second atomic write. A later write of either
    replaces its own name only (atomic_write renames a new file in)."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.link.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.link(page, tmp)
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        atomic_write(target, html)


def write_index(folder: Path, runs) -> Path:
    target = folder / "index.html"
    atomic_write(target, render_index(runs, existing=set(run_pages(folder))))
    return target


def publish(folder: Path, run_id: int, html: str, runs, *, is_latest: bool, keep_runs: int = 0, out: Path | None = None,
            standalone: bool = False) -> Published:
    """Write a run's page. With `out`: only that file (plotly.js beside it unless standalone). Else run-N.html,
    latest.html when it is the latest run, retention, then index.html listing the pages that remain."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if not standalone:
            write_plotly_js(out.parent)
        atomic_write(out, html)
        return Published(out, [])
    folder.mkdir(parents=True, exist_ok=True)
    if not standalone:
        write_plotly_js(folder)
    page = folder / f"run-{run_id}.html"
    atomic_write(page, html)
    if is_latest:
        _same_file(page, folder / "latest.html", html)
    removed = prune_run_pages(folder, keep_runs, protect={run_id})
    write_index(folder, runs)
    return Published(page, removed)
