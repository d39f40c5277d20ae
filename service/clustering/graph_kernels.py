"""Compiled loops of the kept graph's upkeep (graph.join_new_rows, refine_new_rows, revisit_rows), where numpy's
whole-array steps each made and read back a temporary as large as their input.

Imported only by the writer's paths: numba's import and its cached machine code cost ~0.5 s, which a search or a
report need not pay; touch() loads them where the writer opens its copy (vector_cache.warm_up, in the background).
cache=True keeps the compiled code beside this module, else in the user's cache folder or NUMBA_CACHE_DIR (where none
is writable numba refuses to import it, as it does fast_hdbscan's); nogil=True lets the join's threads run these side
by side, as they did numpy's steps.

At 300k rows (bench/scale.py under py-spy) the join's masks and nonzero took 21 CPU s and the neighbours-of-
neighbours passes' gather of candidate vectors from the memory map 15 s: the gather copied each candidate's vector
into a temporary before one product; here each product reads it in place.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def passing_pairs(sim, threshold, least):
    """The cells of a block of similarities (queries x members) that reach the member's threshold (an offer to it)
    or the query's least (a candidate for the query's own list): (query position, member position, similarity,
    is offer, is candidate), in row-major order, as np.nonzero lists them."""
    m, n = sim.shape
    count = 0
    for i in range(m):
        li = least[i]
        for j in range(n):
            s = sim[i, j]
            if s >= threshold[j] or s >= li:
                count += 1
    qi = np.empty(count, np.int64)
    mi = np.empty(count, np.int64)
    got = np.empty(count, np.float32)
    offer = np.empty(count, np.bool_)
    mine = np.empty(count, np.bool_)
    c = 0
    for i in range(m):
        li = least[i]
        for j in range(n):
            s = sim[i, j]
            o = s >= threshold[j]
            me = s >= li
            if o or me:
                qi[c], mi[c], got[c], offer[c], mine[c] = i, j, s, o, me
                c += 1
    return qi, mi, got, offer, mine


@njit(nogil=True, cache=True, fastmath={"reassoc"})
def gathered_cosines(vectors, cand, queries):
    """Cosine of each query with each of its candidates (rows of vectors; -inf at -1), in float32 as BLAS's products.
    fastmath's reassoc alone: the sum may be split into SIMD lanes (4x as fast as in order), so, as with BLAS, the
    last bit may differ between machines of another vector width, never between runs on one."""
    nq, width = cand.shape
    dim = queries.shape[1]
    out = np.full((nq, width), -np.inf, np.float32)
    for i in range(nq):
        for j in range(width):
            c = cand[i, j]
            if c < 0:
                continue
            s = np.float32(0.0)
            for t in range(dim):
                s += vectors[c, t] * queries[i, t]
            out[i, j] = s
    return out


@njit(nogil=True, cache=True)
def nearest_per_query(query, row, dist, nq, width):
    """Each query's `width` nearest of the (query, row, distance) triples found for it: (rows, distances) of shape
    (nq, width), nearest first, ties in the order found, -1 / inf where fewer. A counting sort by query, then a
    stable sort of each query's few: at 1M one argsort of every pair by a (query, distance) key took 49 s."""
    counts = np.zeros(nq + 1, np.int64)
    for i in range(len(query)):
        counts[query[i] + 1] += 1
    starts = np.cumsum(counts)
    fill = starts[:-1].copy()
    grouped = np.empty(len(query), np.int64)
    for i in range(len(query)):
        grouped[fill[query[i]]] = i
        fill[query[i]] += 1
    idx = np.full((nq, width), -1, np.int64)
    out = np.full((nq, width), np.inf, np.float32)
    for qq in range(nq):
        mine = grouped[starts[qq] : starts[qq + 1]]
        d = dist[mine]
        order = np.argsort(d, kind="mergesort")
        for r in range(min(width, len(mine))):
            idx[qq, r] = row[mine[order[r]]]
            out[qq, r] = d[order[r]]
    return idx, out


def touch() -> None:
    """Compile (first run of an installation) or load each loop on every argument type the writer passes, so its
    first file after a start does not: the copy's vectors and a new batch read back from it are read-only memory maps,
    the revisits' rows a gathered (writable) copy."""
    one = np.ones((1, 4), np.float32)
    read_only = one.copy()
    read_only.setflags(write=False)
    first = np.zeros(1, np.int64)
    passing_pairs(one, np.ones(4, np.float32), np.ones(1, np.float32))
    for queries in (read_only, one):
        gathered_cosines(read_only, first[:, None], queries)
    nearest_per_query(first, first, np.zeros(1, np.float32), 1, 2)
