"""What a new process pays once before its first rebuild, paid at start instead; and compiled code kept on disk.

numba compiles (or loads from its cache) fast_hdbscan's machine code on each function's first
call, and naming's stop words import scikit-learn: together ~2 s in every new process, which
the first rebuild after a restart would otherwise carry. A long-running process (serve) calls
warm_up() while it opens its stores; a one-shot command need not. fast_hdbscan caches its compiled
code on disk (cache=True unless FAST_HDBSCAN_NUMBA_CACHE=false): the first run of an installation
compiles it (86 s seen on 2 busy cores), later processes load it.

UMAP (the report's map) and pynndescent compile most of their functions without numba's disk cache,
so every process paid it again: the first layout of 870 documents in a fresh process took 30 s, the
second 3.5 s. cache_layout_code() turns numba's disk cache on for them before their first call:
fresh-process layout 39 s the first time (compiling and writing the cache), 3.4 s after.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ..domain import Neighbours
from .naming import stop_words
from .two_level import TwoLevelParams, fit_two_levels, leftover_stories


def warm_up() -> float:
    """Seconds spent: a fit of a tiny fixed graph touches every compiled step of the real one."""
    t0 = time.perf_counter()
    stop_words()
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(c, 0.05, (20, 2)) for c in ((0, 0), (1, 0), (0, 1))])
    d = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1)[:, :8]
    neigh = Neighbours(order.astype(np.int64), np.take_along_axis(d, order, axis=1).astype(np.float32))
    params = TwoLevelParams(story_min_cluster_size=5, topic_min_cluster_size=10)
    fit_two_levels(neigh, params)
    # the leftover pass runs only where a fit leaves noise, which this tidy graph may not: run it on all of it
    leftover_stories(neigh, np.full(len(points), -1, np.int64), np.zeros(len(points), np.float32), params.story_min_cluster_size,
                     params.leftover_min_samples, params.leftover_max_size)
    return time.perf_counter() - t0


def cache_layout_code() -> int:
    """numba's on-disk cache for every compiled function of the imported umap and pynndescent modules that lacks
    one (idempotent; numba keeps it where it keeps cache=True functions: beside the module, else the user's cache
    folder, or NUMBA_CACHE_DIR). Returns how many were turned on."""
    import umap  # noqa: F401 — imports pynndescent and the modules whose functions the layout calls
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    turned_on = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("umap.", "pynndescent.")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
                turned_on += 1
    return turned_on
