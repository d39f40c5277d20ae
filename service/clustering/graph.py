"""Vectors -> neighbour lists -> symmetric sparse distance graph, in O(n·k) memory (never n×n).

Distances are Euclidean between unit vectors, sqrt(2 - 2·cos): a metric, so HDBSCAN's
mutual reachability means what it says, and monotone in cosine, so Milvus's COSINE
ranking and ours agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from ..domain import Neighbours, cosine_to_distance  # noqa: F401 — defined with the domain (the vector stores answer in it too)

# scipy drops explicit zeros when it sums or compares sparse matrices, which would cut
# duplicate headlines (distance 0) out of the graph: floor every edge at this.
MIN_DISTANCE = 1e-9
# Exact search is fast enough and exact below this size; an inverted-file index above it.
EXACT_SEARCH_MAX_N = 50_000
IVF_PROBES = 32  # the kept graph (join_new_rows) compares a new document with the rows of this many lists
TRAIN_PER_LIST = 40
TRAIN_ITERATIONS = 10
RETRAIN_ITERATIONS = 4  # from the outgrown index's centres (_train_lists)


def knn(vectors: np.ndarray, k: int, *, threads: int | None = None, index=None) -> Neighbours:
    """Each document's k nearest others, by an in-process faiss index.

    Chosen over one Milvus search per document: a full graph needs n searches, and Milvus
    Lite's brute-force search costs ~2.8 s per 1,000 queries at 100k rows, while faiss
    FlatIP does the whole 100k graph in seconds. HNSW takes over where exact search
    grows quadratic. Pass `index` (from build_index over the same vectors) to keep it for later searches.
    """
    import faiss

    if threads:
        faiss.omp_set_num_threads(threads)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = x.shape[0]
    k = max(0, min(k, n - 1))
    if k == 0:
        return Neighbours(np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32))
    index = index if index is not None else build_index(x, k)
    sims, idx = index.search(x, k + 1)
    return _drop_self(idx.astype(np.int64), sims, k)


def build_index(vectors: np.ndarray, k: int = 15, seed: int = 42, centres: np.ndarray | None = None):
    """A faiss inner-product index: exact up to EXACT_SEARCH_MAX_N rows, IVF-Flat above.

    IVF over HNSW: at 100k rows HNSW took ~94 s to build (measured here) and exact search 67 s,
    while IVF trains in seconds and a query scans IVF_PROBES of 4·sqrt(n) lists, ~4·sqrt(n)
    vectors (bench/scale.py prints the graph's recall against exact search). Training is
    kept cheap (TRAIN_PER_LIST points a list, TRAIN_ITERATIONS rounds): it is redone as
    the collection doubles, and at 1M rows faiss's defaults would take minutes. centres: the list
    centres of the index this one replaces (list_centres of the live index outgrown): they start the training.
    """
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = x.shape
    if n <= EXACT_SEARCH_MAX_N:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(n, size=min(n, TRAIN_PER_LIST * nlist), replace=False)
        start = centres if centres is not None and 0 < len(centres) <= nlist else None
        _train_lists(index, x[np.sort(sample)], seed, start)
        index.nprobe = IVF_PROBES
    index.add(x)
    return index


def list_centres(index) -> np.ndarray | None:
    """The centres of an inverted file's lists (None for a flat index): where a retrain of it starts (build_index)."""
    ivf = _inverted_file(index)
    if ivf is None or ivf.quantizer.ntotal != ivf.nlist:
        return None
    return ivf.quantizer.reconstruct_n(0, ivf.nlist)


def _train_lists(index, sample: np.ndarray, seed: int, start: np.ndarray | None) -> None:
    """The lists' centres by spherical k-means over sample. start: the outgrown index's centres, the first of the new
    ones (faiss draws the rest from the sample), refined for RETRAIN_ITERATIONS rounds only. At 880k story-shaped rows
    (from 440k) that took 13-17 CPU s against 49-52 from scratch, with rows as near their list's centre (mean cosine
    0.471-0.473 against 0.472) and lists more even (a row's list holds 3.08x the mean against 3.22x)."""
    import faiss

    if start is None:
        index.cp.niter, index.cp.seed = TRAIN_ITERATIONS, seed
        index.train(sample)
        return
    # spherical: the new inner-product index set it in its cp (an index read back from a file has lost it: never used here)
    clustering = faiss.Clustering(index.d, index.nlist, index.cp)
    clustering.niter, clustering.seed = RETRAIN_ITERATIONS, seed
    faiss.copy_array_to_vector(np.ascontiguousarray(start, dtype=np.float32).ravel(), clustering.centroids)
    clustering.train(sample, index.quantizer)  # leaves the centres in the quantizer
    index.is_trained = True


def search_index(index, queries: np.ndarray, k: int) -> Neighbours:
    """Rows of the indexed vectors nearest each query (the queries are not in the index)."""
    k = max(1, min(k, index.ntotal))
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return Neighbours(idx.astype(np.int64), _found_distances(sims, idx))


def _found_distances(sims: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """A faiss search's similarities as distances, inf past the rows found (-1), where faiss answers its lowest
    float, whose distance overflows."""
    dist = cosine_to_distance(np.where(idx < 0, np.float32(-1), sims))
    dist[idx < 0] = np.inf
    return dist


def is_exact(index) -> bool:
    """Whether index compares a query with every row (a flat index), not only with some lists' rows."""
    return _inverted_file(index) is None


def _inverted_file(index):
    """The index's inverted file, or None for a flat index (which holds every row, in row order)."""
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


class Probed(NamedTuple):
    """What index.search(queries, k + 1) would compare (probed_blocks)."""

    floor: np.ndarray | None  # each query's (k+1)-th similarity in its nearest list (-inf: fewer rows); None: an exact index
    blocks: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (query positions, member rows, member vectors)


def probe_lists(index, queries: np.ndarray) -> np.ndarray | None:
    """The list numbers an inverted file probes for each query (nq, nprobe), nearest first (-1 past its lists); None
    for an exact index."""
    ivf = _inverted_file(index)
    if ivf is None:
        return None
    return ivf.quantizer.search(np.ascontiguousarray(queries, dtype=np.float32), ivf.nprobe)[1]


def add_rows(index, rows: np.ndarray, probes: np.ndarray | None) -> None:
    """rows appended to the index (as rows ntotal..); an inverted file's each to its nearest list from probe_lists'
    answer for them, where faiss's add would search the quantizer again (each 5,000 new rows x ~4,000 lists x 384 at
    1M: the same product twice a batch)."""
    import faiss

    x = np.ascontiguousarray(rows, dtype=np.float32)
    if probes is None or not len(x):
        index.add(x)
        return
    ivf = _inverted_file(index)
    lists = np.ascontiguousarray(probes[:, 0], dtype=np.int64)
    ivf.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(lists))  # both arrays held by name while faiss reads


def probed_blocks(index, queries: np.ndarray, k: int, probes: np.ndarray | None = None) -> Probed:
    """What index.search(queries, k + 1) would compare: (floor, blocks). blocks: (query positions, member rows,
    member vectors), each probed list with the queries that probe it (an exact index: one block of every row); views
    into the index's own storage, valid until it is next added to. floor: each query's (k+1)-th similarity in its
    nearest list (None for an exact index), which its own k+1 nearest reach.
    probes: probe_lists' answer for the queries, where the caller has it already (add_rows)."""
    import faiss

    nq, dim = queries.shape
    ivf = _inverted_file(index)
    if ivf is None:  # the flat index holds every row, in row order
        xb = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * dim).reshape(index.ntotal, dim)
        return Probed(None, iter([(np.arange(nq), np.arange(index.ntotal, dtype=np.int64), xb)]))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    lists = probes if probes is not None else probe_lists(index, queries)
    return Probed(_nearest_list_floor(ivf, queries, lists[:, :1], k + 1), _list_blocks(ivf, lists))


def _nearest_list_floor(ivf, queries: np.ndarray, nearest: np.ndarray, kth: int) -> np.ndarray:
    """Each query's kth largest similarity among the rows of its nearest list (-inf where it holds fewer), one
    product a list for the queries it is nearest: faiss's search_preassigned of that one list scanned it query by
    query with a result heap (62 of the 1M insert's CPU s, against ~8 for the products)."""
    from threadpoolctl import threadpool_limits

    floor = np.full(len(queries), -np.inf, np.float32)
    with threadpool_limits(1, user_api="blas"):  # small products: one BLAS thread (join_new_rows)
        for members, _, vectors in _list_blocks(ivf, nearest):
            for q, sim in _block_similarities(queries, members, vectors):  # JOIN_BLOCK at a time: a list may be long
                floor[q] = _kth_largest(sim, kth)
    return floor


def _list_blocks(ivf, probes: np.ndarray):
    """Each list named in probes (nq, p) with the queries that name it: (query positions, member rows, vectors)."""
    import faiss

    dim = ivf.d
    lists = probes.ravel()
    query = np.repeat(np.arange(probes.shape[0]), probes.shape[1])
    ok = lists >= 0
    lists, query = lists[ok], query[ok]
    if len(lists) == 0:
        return
    order = np.argsort(lists, kind="stable")
    lists, query = lists[order], query[order]
    bounds = np.flatnonzero(np.r_[True, lists[1:] != lists[:-1], True])
    invlists = ivf.invlists
    for a, b in zip(bounds[:-1], bounds[1:]):
        size = invlists.list_size(int(lists[a]))
        if size == 0:
            continue
        ids = faiss.rev_swig_ptr(invlists.get_ids(int(lists[a])), size)
        codes = faiss.rev_swig_ptr(invlists.get_codes(int(lists[a])), size * dim * 4).view(np.float32).reshape(size, dim)
        yield query[a:b], ids, codes


def _kth_cosines(kth_distance: np.ndarray) -> np.ndarray:
    """Each row's k-th listed distance as a cosine (-inf where its list is short: any new row comes nearer), so a
    block's similarities are compared with it as they are."""
    d = np.asarray(kth_distance, np.float64)
    return np.where(np.isfinite(d), 1.0 - d * d / 2.0, -np.inf).astype(np.float32)


JOIN_BLOCK = 1 << 24  # similarities computed at a time in join_new_rows and for the floor, per thread (64 MB)
FLOOR_SLACK = 1e-5  # the floor's products and the blocks' (of other shapes) may round apart by about 1e-7
# An inverted file's blocks are shared out between this many threads, in a fixed way (the lists found do not depend
# on the machine, only on this number, through the order of ties): BLAS's products and graph_kernels' comparisons
# let go of the interpreter's lock, so the join (the writer's largest cost) takes both cores of a small machine
# (bench/graph_replay.py 200k quiet: insert 68.4 -> 55.4 s wall, the same CPU and recall 0.951).
JOIN_THREADS = 2


def join_new_rows(probed: Probed, new: np.ndarray, first_row: int, kth_distance: np.ndarray, k: int):
    """New rows first_row.. against what an index compares them with (probed_blocks' answer, the new rows already in
    the index): (their own k nearest others, and the pairs (older row, new row, distance) where the new
    row is nearer the older one than that one's k-th listed neighbour, kth_distance[older row]).

    Why not index.search and offer each new row to the rows it found: an older document in a sparse spot is a true
    neighbour of a new one in a dense spot without being among the new one's nearest hundreds, so a search however
    deep misses it (the kept graph held 0.854 of the first 50k rows' true neighbours at 100k, searching 16·k deep).
    Comparing every similarity the search computes with the other end's k-th finds all of them among the rows the
    index compares, at the cost of the search itself: one matrix product a block.

    A new row's own list: its k+1 nearest in its nearest list (probed_blocks' floor; an exact index's block holds
    every row) set the similarity its probes must reach, so a block needs one comparison more and no result
    heap (faiss's heap took 28 of a 128 s insert at 300k, ~35 ns a similarity; the same lists).

    An inverted file's blocks are shared between JOIN_THREADS Python threads, each with one BLAS thread: a block is a
    small product (at 300k, ~70 new rows x ~140 of a list's), where two OpenBLAS threads waiting on each other beside
    other busy processes took 6-14x as long (73 x 137 x 384: 79 us on one, 474 on two at load 3; bench/graph_replay.py
    200k, one join thread: insert CPU 108 -> 73 s, wall 106 -> 81 s). faiss's own search of the lists to probe
    (probe_lists) keeps its threads."""
    from threadpoolctl import threadpool_limits

    new = np.ascontiguousarray(new, dtype=np.float32)  # float32 products, as the floor's
    with threadpool_limits(1, user_api="blas"):
        return _join(probed, new, first_row, kth_distance, k)


def _join(probed: Probed, new: np.ndarray, first_row: int, kth_distance: np.ndarray, k: int):
    from threadpoolctl import threadpool_limits

    from .graph_kernels import passing_pairs

    floor = probed.floor
    nq = len(new)
    # cosine of each older row's k-th; +inf for the new rows, whose own lists are found apart: compared in place, no
    # copy of a block's columns to older rows
    kth_cos = np.concatenate([_kth_cosines(kth_distance), np.full(nq, np.inf, np.float32)])
    # what a new row's own candidates must reach: a little under the floor (FLOOR_SLACK)
    bound = None if floor is None else np.asarray(floor, np.float32) - np.float32(FLOOR_SLACK)

    def scan(blocks) -> tuple[_Pairs, _Pairs]:
        offers, found = _Pairs(), _Pairs()  # (older row, new row, cosine); (new row's position, row, cosine)
        with threadpool_limits(1, user_api="blas"):  # again in each thread: an OpenMP BLAS sets it per thread
            for queries, ids, vectors in blocks:
                ids = np.asarray(ids, np.int64)
                threshold = kth_cos[ids]
                for q, sim in _block_similarities(new, queries, vectors):
                    # an exact index's block holds every row; contiguous: the compiled loop's one argument type
                    least = np.ascontiguousarray(_kth_largest(sim, k + 1)) if bound is None else bound[q]
                    qi, mi, s, offer, mine = passing_pairs(sim, threshold, least)
                    offers.add(ids[mi[offer]], q[qi[offer]] + first_row, s[offer])
                    found.add(q[qi[mine]], ids[mi[mine]], s[mine])
        return offers, found

    blocks = list(probed.blocks)
    threads = min(JOIN_THREADS, len(blocks))
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads, thread_name_prefix="join") as pool:
            parts = list(pool.map(scan, [blocks[i::threads] for i in range(threads)]))
    else:
        parts = [scan(blocks)]
    offers, found = _Pairs.joined([p[0] for p in parts]), _Pairs.joined([p[1] for p in parts])
    rows = np.arange(first_row, first_row + nq, dtype=np.int64)
    own = nearest_others(_nearest_found(found, nq, k + 1), rows, k)
    older, newer, sims = offers.arrays()
    return own, (older, newer, cosine_to_distance(sims))


def _kth_largest(sim: np.ndarray, kth: int) -> np.ndarray:
    """Each row's kth largest value (-inf where a row is shorter)."""
    m = sim.shape[1]
    if m < kth:
        return np.full(len(sim), -np.inf, np.float32)
    return np.partition(sim, m - kth, axis=1)[:, m - kth]


def _block_similarities(new: np.ndarray, queries: np.ndarray, vectors: np.ndarray):
    """(query positions, their cosines with a block's vectors), JOIN_BLOCK similarities at a time."""
    step = max(1, JOIN_BLOCK // max(len(vectors), 1))
    for s in range(0, len(queries), step):
        q = queries[s : s + step]
        yield q, new[q] @ vectors.T


class _Pairs:
    """(a, b, cosine) triples gathered block by block, joined once."""

    def __init__(self):
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, a: np.ndarray, b: np.ndarray, cosine: np.ndarray) -> None:
        if len(a):
            self._parts.append((a, b, cosine))

    @classmethod
    def joined(cls, parts: list[_Pairs]) -> _Pairs:
        out = cls()
        for p in parts:
            out._parts += p._parts
        return out

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        a, b, c = zip(*self._parts)
        return np.concatenate(a).astype(np.int64), np.concatenate(b).astype(np.int64), np.concatenate(c).astype(np.float32)


def _nearest_found(found: _Pairs, nq: int, width: int) -> Neighbours:
    """Each query's `width` nearest among what was found for it, as search results (-1 / inf where fewer); ties in
    the order found, which JOIN_THREADS fixes."""
    from .graph_kernels import nearest_per_query

    q, row, sim = found.arrays()
    dist = np.maximum(cosine_to_distance(sim), np.float32(0)) + np.float32(0)  # + 0: no -0.0 written to the lists
    return Neighbours(*nearest_per_query(q, row, dist, nq, width))


# The pass follows this many nearest of a new row's neighbours, and that many of each one's list (bench/graph_replay.py,
# 200k, insert CPU s / recall: no pass 54.7 / 0.929; 8: 58.7 / 0.939; 11: 66.2 / 0.941; 15: 76.4 / 0.943).
REFINE_WIDTH = 8


def refine_new_rows(vectors, older_lists: np.ndarray, own: Neighbours, first_row: int, kth_distance: np.ndarray, k: int):
    """One neighbours-of-neighbours pass over new rows first_row.. after join_new_rows: each new row is compared with
    the listed neighbours of its own listed neighbours (older rows' lists from older_lists, the batch's from `own`),
    takes the nearer ones into its list, and is offered to each older one it comes nearer than that one's k-th.
    vectors: every row's vector, new rows included (the copy's memory map). Returns (own lists, offers) as
    join_new_rows does.

    Why: the index compares a new row with the rows of the lists it probes; a true neighbour just across a list's
    border is missed there, but it is nearly always listed by one of the new row's nearest (a story's headlines list
    each other). At most REFINE_WIDTH² rows gathered a new row, against the thousands its probes compare."""
    nq = own.indices.shape[0]
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if nq == 0 or k == 0:
        return own, empty
    rows = np.arange(first_row, first_row + nq, dtype=np.int64)
    w = min(k, REFINE_WIDTH)
    nb = own.indices
    listed = nb[:, :w] >= 0
    safe = np.where(listed, nb[:, :w], 0)
    is_old = listed & (safe < first_row)
    cand = np.full((nq, w, w), -1, np.int64)
    if first_row and is_old.any():
        cand[is_old] = older_lists[safe[is_old]][:, :w]
    is_new = listed & ~is_old
    cand[is_new] = own.indices[safe[is_new] - first_row][:, :w]
    cand = _unlisted(cand.reshape(nq, w * w), rows, nb)
    if cand.shape[1] == 0:
        return own, empty
    kth_cos = _kth_cosines(kth_distance)
    sims = _gathered_cosines(vectors, cand, np.ascontiguousarray(vectors[first_row : first_row + nq], dtype=np.float32))
    qi, ci = np.nonzero(cand >= 0)
    other, sim = cand[qi, ci], sims[qi, ci]
    dist = cosine_to_distance(sim)
    inside = other >= first_row  # a batch row: both lists are ours to offer to
    own_rows = np.concatenate([qi, other[inside] - first_row])
    own_cands = np.concatenate([other, qi[inside] + first_row])
    own_dist = np.concatenate([dist, dist[inside]])
    touched, t_idx, t_dist = merge_neighbours(own.indices, own.distances, own_rows, own_cands, own_dist, row_offset=first_row)
    idx, dists = own.indices.copy(), own.distances.copy()
    idx[touched], dists[touched] = t_idx, t_dist
    older = ~inside
    if not older.any():  # the first batch: no older list to offer to
        return Neighbours(idx, dists), empty
    nearer = older & (sim >= kth_cos[np.where(older, other, 0)])
    return Neighbours(idx, dists), (other[nearer], qi[nearer] + first_row, dist[nearer])


def revisit_rows(vectors, lists: np.ndarray, kth_distance: np.ndarray, rows: np.ndarray, k: int):
    """The neighbours-of-neighbours pass for rows already in the graph: each of `rows` is compared with the listed
    neighbours of its REFINE_WIDTH nearest listed ones. lists: every row's list (the copy's memory map), kth_distance
    each row's k-th. Returns offers (row, candidate, distance) both ways: a candidate nearer a revisited row than its
    k-th, and the revisited row to a candidate it comes nearer than that one's k-th.

    Why: a row in a sparse spot (a headline of no story) has true neighbours far off, and a new row among them
    probes the lists around itself, not the sparse row's: at 200k the kept graph held 0.80 of such rows' true
    neighbours against 0.96 of story members'. Their own neighbours' lists do hold the newcomers (one pass over
    every row at 200k: recall 0.944 -> 0.958, background rows 0.80 -> 0.85)."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0 or k == 0:
        return empty
    w = min(k, REFINE_WIDTH)
    nb = np.asarray(lists[rows], np.int64)
    listed = nb[:, :w] >= 0
    cand = np.full((len(rows), w, w), -1, np.int64)
    cand[listed] = np.asarray(lists[nb[:, :w][listed]], np.int64)[:, :w]
    cand = _unlisted(cand.reshape(len(rows), w * w), rows, nb)
    if cand.shape[1] == 0:
        return empty
    sims = _gathered_cosines(vectors, cand, np.asarray(vectors[rows], np.float32))
    qi, ci = np.nonzero(cand >= 0)
    other, sim = cand[qi, ci], sims[qi, ci]
    kth_cos = _kth_cosines(kth_distance)
    into_row = sim >= kth_cos[rows[qi]]
    into_other = sim >= kth_cos[other]
    dist = cosine_to_distance(sim)
    return (np.concatenate([rows[qi][into_row], other[into_other]]),
            np.concatenate([other[into_row], rows[qi][into_other]]),
            np.concatenate([dist[into_row], dist[into_other]]))


def _unlisted(cand: np.ndarray, rows: np.ndarray, listed: np.ndarray) -> np.ndarray:
    """Each row's candidates, without duplicates, itself or what it lists already (compared before), packed to the
    left (-1 after), as narrow as the longest row's."""
    cand = np.sort(cand, axis=1)
    drop = (cand < 0) | (cand == rows[:, None])
    drop[:, 1:] |= cand[:, 1:] == cand[:, :-1]
    for j in range(listed.shape[1]):
        drop |= cand == listed[:, j : j + 1]
    order = np.argsort(drop, axis=1, kind="stable")
    cand = np.take_along_axis(cand, order, axis=1)
    width = int((~drop).sum(axis=1).max()) if len(cand) else 0
    return np.where(np.take_along_axis(drop, order, axis=1), -1, cand)[:, :width]


def _gathered_cosines(vectors, cand: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosine of each query with each of its candidates (-inf at -1), each candidate's vector read in place from
    `vectors` (a memory map)."""
    from .graph_kernels import gathered_cosines

    cand = np.ascontiguousarray(cand, np.int64)
    if cand.size and int(cand.max()) >= len(vectors):  # the compiled loop does not check: a list out of step with the copy
        raise IndexError(f"candidate row {int(cand.max())} past the {len(vectors)} rows of the vectors")
    return gathered_cosines(np.asarray(vectors, np.float32), cand, np.ascontiguousarray(queries, np.float32))


def _drop_self(idx: np.ndarray, sims: np.ndarray, k: int) -> Neighbours:
    """Remove each row's own index; where duplicates outrank it, drop the last column instead."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True
    keep = ~is_self
    out_idx = idx[keep].reshape(n, k)
    return Neighbours(out_idx, _found_distances(sims[keep].reshape(n, k), out_idx))


def core_distances(neigh: Neighbours, min_samples: int) -> np.ndarray:
    """Distance to the min_samples-th nearest other document (inf where there are fewer)."""
    if neigh.k == 0:
        return np.full(neigh.indices.shape[0], np.inf, np.float32)
    col = min(min_samples, neigh.k) - 1
    return neigh.distances[:, col].copy()


def symmetric_graph(neigh: Neighbours, weights: np.ndarray | None = None) -> sp.csr_matrix:
    """Undirected kNN graph: an edge wherever either end lists the other, weighted by the smaller value.

    `weights` replaces the raw distances (e.g. mutual reachability); zeros are floored
    at MIN_DISTANCE so duplicates stay connected. The smaller of the two directions is
    scipy's elementwise maximum of the matrix and its transpose with each weight stored as
    int32 max minus its float32 bits: positive floats order as their bits do, a missing
    direction is an implicit zero there, so the listed one wins, and the bits come back exact
    (9x faster than sorting int64 pair keys at 100k documents).
    """
    n = neigh.indices.shape[0]
    rows, cols, vals = listed_edges(neigh, weights)
    if _lists_repeat(neigh.indices):
        return symmetric_by_sort(n, rows, cols, vals)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    g = sp.csr_matrix((_FLIP - vals.view(np.int32), cols, indptr), shape=(n, n))
    del rows, cols, vals
    out = g.maximum(g.T.tocsr())
    del g
    out.data = (_FLIP - out.data.astype(np.int32, copy=False)).view(np.float32)
    out.indices = out.indices.astype(np.int32, copy=False)
    return out


_FLIP = np.int32(0x7FFFFFFF)  # minus the bits of a positive float32 (at most inf's 0x7F800000): positive, order reversed


def _lists_repeat(indices: np.ndarray) -> bool:
    """A row that lists one neighbour twice (never from our searches): scipy would add the pair's two values."""
    if indices.shape[1] < 2:
        return False
    s = np.sort(indices, axis=1)
    return bool(((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)).any())


def symmetric_by_sort(n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> sp.csr_matrix:
    """The general path: every (row, column) pair once, with its smallest weight, by one int64 pair key."""
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    key = r.astype(np.int64) * n + c
    del r, c
    v = np.concatenate([vals, vals])
    order = np.lexsort((v, key))
    key, v = key[order], v[order]
    del order
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key, v = key[first], v[first]
    indptr = np.searchsorted(key, np.arange(n + 1, dtype=np.int64) * n).astype(np.int64)
    return sp.csr_matrix((v, (key % n).astype(np.int32), indptr), shape=(n, n))


def directed_graph(neigh: Neighbours) -> sp.csr_matrix:
    """The kNN lists as they are, one row per document (floored like symmetric_graph): for fast_hdbscan,
    which takes the min over both directions itself, so building our symmetric copy first only costs memory."""
    n = neigh.indices.shape[0]
    rows, cols, vals = listed_edges(neigh, None)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return sp.csr_matrix((vals, cols, indptr), shape=(n, n))


def listed_edges(neigh: Neighbours, weights: np.ndarray | None):
    """(row, column, weight) of every listed neighbour, row-major; weights floored at MIN_DISTANCE."""
    n, k = neigh.indices.shape
    w = neigh.distances if weights is None else weights
    cols = neigh.indices.reshape(-1)
    vals = np.maximum(w.reshape(-1).astype(np.float32), np.float32(MIN_DISTANCE))
    ok = (cols >= 0) & np.isfinite(vals)
    rows = np.repeat(np.arange(n, dtype=np.int32), k)[ok]
    return rows, cols[ok].astype(np.int32), vals[ok]


def mutual_reachability(neigh: Neighbours, core: np.ndarray) -> np.ndarray:
    """max(d(a,b), core(a), core(b)) for every listed pair, shaped like neigh.distances."""
    idx = np.where(neigh.indices >= 0, neigh.indices, 0)
    other = np.where(neigh.indices >= 0, core[idx], np.inf)
    return np.maximum(np.maximum(neigh.distances, core[:, None]), other).astype(np.float32)


def merge_neighbours(indices: np.ndarray, distances: np.ndarray, rows: np.ndarray, candidates: np.ndarray,
                     candidate_distances: np.ndarray, row_offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offer candidate neighbours to some rows' lists; each row keeps its k nearest distinct others.

    indices/distances: the current (n, k) lists (-1 / inf in empty slots). Candidate j is
    document candidates[j] at candidate_distances[j] from document rows[j] (row r of the lists is document
    r + row_offset: a batch's own lists).
    Returns (the rows touched, sorted; their new lists; their new distances).

    A candidate farther than its row's current k-th entry cannot enter the list (a tie can, by index), so those
    are dropped before the sort: a batch of 256 arrivals offers ~60k candidates at 100k documents, and ~95% of them
    fall out here (0.9 -> 0.1 s a batch, same lists).
    """
    k = indices.shape[1]
    rows = np.asarray(rows)
    may_enter = np.asarray(candidate_distances) <= distances[rows, k - 1] if k else np.zeros(len(rows), bool)
    rows, candidates, candidate_distances = rows[may_enter], np.asarray(candidates)[may_enter], np.asarray(candidate_distances)[may_enter]
    touched = np.unique(rows)
    slot = np.concatenate([np.repeat(np.arange(len(touched), dtype=np.int64), k), np.searchsorted(touched, rows)])
    c = np.concatenate([indices[touched].ravel(), candidates]).astype(np.int64)
    d = np.concatenate([distances[touched].ravel(), candidate_distances]).astype(np.float32)
    ok = (c >= 0) & (c != touched[slot] + row_offset) & np.isfinite(d)
    slot, c, d = slot[ok], c[ok], np.where(d[ok] > 0, d[ok], np.float32(0))  # -0.0's bits would sort last
    # one int64 key a sort, not lexsort's three passes (merge was the writer's largest cost at 100k: 1.4 s a batch)
    pair = slot * (int(c.max()) + 1 if len(c) else 1) + c
    order = np.argsort(pair)
    pair, slot, c, d = pair[order], slot[order], c[order], d[order]
    first = np.r_[True, pair[1:] != pair[:-1]]
    if not first.all():  # a pair listed twice: its smallest distance
        starts = np.flatnonzero(first)
        d = np.minimum.reduceat(d, starts)
        slot, c = slot[starts], c[starts]
    # per row nearest first; the stable sort keeps ties in index order (from the pair sort), so the result never
    # depends on input order. A non-negative float32's bits order as its value.
    order = np.argsort((slot << 32) | d.view(np.uint32).astype(np.int64), kind="stable")
    slot, c, d = slot[order], c[order], d[order]
    starts = np.searchsorted(slot, np.arange(len(touched)))
    rank = np.arange(len(slot)) - starts[slot]
    keep = rank < k
    out_idx = np.full((len(touched), k), -1, np.int64)
    out_dist = np.full((len(touched), k), np.inf, np.float32)
    out_idx[slot[keep], rank[keep]] = c[keep]
    out_dist[slot[keep], rank[keep]] = d[keep]
    return touched, out_idx, out_dist


def subgraph(neigh: Neighbours, rows: np.ndarray, n_total: int) -> Neighbours:
    """The lists of `rows` (in that order), re-indexed to positions in `rows`; neighbours outside are dropped."""
    position = np.full(n_total, -1, np.int64)
    position[rows] = np.arange(len(rows))
    idx = neigh.indices[rows]
    idx = np.where(idx >= 0, position[np.maximum(idx, 0)], -1)
    dist = np.where(idx >= 0, neigh.distances[rows], np.inf).astype(np.float32)
    order = np.argsort(dist, axis=1, kind="stable")  # dropped slots (inf) move to the end
    return Neighbours(np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1))


def nearest_others(found: Neighbours, rows: np.ndarray, k: int) -> Neighbours:
    """Search results for documents `rows` -> each one's k nearest other documents (-1 / inf where fewer)."""
    d = np.where((found.indices == rows[:, None]) | (found.indices < 0), np.inf, found.distances).astype(np.float32)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    take = nearest.shape[1]
    idx = np.full((len(rows), k), -1, np.int64)
    dist = np.full((len(rows), k), np.inf, np.float32)
    dist[:, :take] = np.take_along_axis(d, nearest, axis=1)
    idx[:, :take] = np.where(np.isfinite(dist[:, :take]), np.take_along_axis(found.indices, nearest, axis=1), -1)
    return Neighbours(idx, dist)


def complete_lists(neigh: Neighbours, vectors: np.ndarray) -> Neighbours:
    """Rows short of k neighbours (a time window cut some away) searched again among `vectors`."""
    short = np.flatnonzero((neigh.indices < 0).any(axis=1))
    k = min(neigh.k, len(vectors) - 1)
    if len(short) == 0 or k <= 0:
        return neigh
    fixed = nearest_others(search_index(build_index(vectors, k), vectors[short], k + 1), short, k)
    idx, dist = neigh.indices.copy(), neigh.distances.copy()
    idx[short, :k], dist[short, :k] = fixed.indices, fixed.distances
    return Neighbours(idx, dist.astype(np.float32))


def check_neighbours(neigh: Neighbours, n: int | None = None) -> Neighbours:
    """neigh as domain.Neighbours states it, else a ValueError saying what is wrong: indices (n, k) integers in
    [-1, n), distances (n, k) floats, each row closest first, -1 exactly where the distance is inf (fewer than k
    others), no NaN, no negative distance, no row listing itself. (n: the rows expected, when the caller knows.)

    Why checked where the core takes it: a graph that breaks the contract does not fail loudly downstream, it
    clusters wrongly (fast_hdbscan validates its own precomputed input for the same reason). O(n k), vectorised."""
    idx, dist = np.asarray(neigh.indices), np.asarray(neigh.distances)
    if idx.ndim != 2 or dist.shape != idx.shape:
        raise ValueError(f"neighbours: indices {idx.shape} and distances {dist.shape} must be two (n, k) arrays of one shape")
    if n is not None and idx.shape[0] != n:
        raise ValueError(f"neighbours: {idx.shape[0]} rows for {n} documents")
    if not np.issubdtype(idx.dtype, np.integer) or not np.issubdtype(dist.dtype, np.floating):
        raise ValueError(f"neighbours: indices must be integers ({idx.dtype}) and distances floats ({dist.dtype})")
    rows = idx.shape[0]
    if idx.size == 0:
        return neigh
    if int(idx.min()) < -1 or int(idx.max()) >= rows:
        raise ValueError(f"neighbours: indices outside [-1, {rows})")
    if np.isnan(dist).any() or (dist < 0).any():
        raise ValueError("neighbours: distances must be non-negative numbers (NaN or negative found)")
    missing = idx < 0
    if not np.array_equal(missing, np.isinf(dist)):
        raise ValueError("neighbours: -1 (no neighbour) and an infinite distance must go together")
    if (idx == np.arange(rows)[:, None]).any():
        raise ValueError("neighbours: a row lists itself (the lists hold each document's nearest others)")
    finite = np.where(missing, np.finfo(np.float64).max, dist.astype(np.float64))
    if (np.diff(finite, axis=1) < -1e-6).any():
        raise ValueError("neighbours: each row must list its neighbours closest first")
    return neigh
