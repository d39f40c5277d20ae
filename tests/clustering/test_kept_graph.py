"""The kept kNN graph grown batch by batch (graph.join_new_rows over an index's probed blocks) against a fresh build."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.clustering import graph
from service.clustering.graph import build_index, is_exact, join_new_rows, knn, merge_neighbours, probed_blocks, refine_new_rows

from ..conftest import unit_vectors


def grow(x: np.ndarray, batches: list[int], k: int, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The lists as the writer keeps them: each batch added to the index, joined (and, past the exact range,
    refined by neighbours of neighbours), its offers merged; without the writer's revisits of older rows."""
    idx = np.zeros((0, k), np.int64)
    dist = np.zeros((0, k), np.float32)
    index = build_index(x[:0], k)
    start = 0
    for size in batches:
        new = x[start : start + size]
        if start > graph.EXACT_SEARCH_MAX_N and is_exact(index):
            index = build_index(x[:start], k)  # past the exact range: the live index is rebuilt as an IVF one, as LiveIndex does
        probes = graph.probe_lists(index, new)  # as the writer does: the lists searched once, for the adding and the join
        graph.add_rows(index, new, probes)
        own, (older, newer, d) = join_new_rows(probed_blocks(index, new, k, probes), new, start, dist[:, k - 1], k)
        if refine and start and not is_exact(index):
            own, (o2, n2, d2) = refine_new_rows(x[: start + size], idx, own, start, dist[:, k - 1], k)
            older, newer, d = np.concatenate([older, o2]), np.concatenate([newer, n2]), np.concatenate([d, d2])
        idx, dist = np.vstack([idx, own.indices]), np.vstack([dist, own.distances])
        if len(older):
            touched, t_idx, t_dist = merge_neighbours(idx, dist, older, newer, d)
            idx[touched], dist[touched] = t_idx, t_dist
        start += size
    return idx, dist


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.integers(0, 10**6))
def test_an_exact_index_grown_in_batches_keeps_exactly_a_fresh_builds_lists(batches, seed):
    """Every pair the new rows could enter is compared with the older row's k-th: the lists are the exact ones,
    whatever the batches (compared by distance: ties may list another row at the same distance)."""
    rng = np.random.default_rng(seed)
    x, _ = unit_vectors(rng, 4, 30, dim=8, spread=0.3)
    x = x[rng.permutation(len(x))[: sum(batches)]]
    k = 5
    idx, dist = grow(x, batches, k)
    exact = knn(x, k)
    kk = exact.k
    assert np.allclose(dist[:, :kk], exact.distances, atol=1e-5)
    assert np.all(idx[:, kk:] == -1)
    assert not np.any(idx == np.arange(len(x))[:, None])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([16, 64, 128]), st.integers(1, 130), st.integers(1, 120), st.integers(1, 8))
def test_a_new_rows_own_list_is_what_the_index_search_finds(seed, nlist, probes, batch, k):
    """join_new_rows finds a new row's list without the search's result heap (its nearest list's k+1 best set what
    the other probes must reach): the same distances as index.search over the same probes, also where a nearest list
    holds fewer than k+1 rows (no floor) and where more lists are probed than there are (faiss answers -1)."""
    import faiss

    rng = np.random.default_rng(seed)
    x, _ = unit_vectors(rng, 12, 40, dim=16, spread=0.3)
    x = x[rng.permutation(len(x))]
    start = len(x) - batch
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # few points a list: a quiet, deliberately sparse training
    index.train(x[:start])
    index.add(x)
    index.nprobe = min(probes, nlist + 2)
    own, _ = join_new_rows(probed_blocks(index, x[start:], k), x[start:], start, np.zeros(start, np.float32), k)
    rows = np.arange(start, len(x))
    searched = graph.nearest_others(graph.search_index(index, x[start:], k + 1), rows, k)
    assert np.allclose(own.distances, searched.distances, atol=1e-5)
    assert np.array_equal(own.indices < 0, searched.indices < 0)


def test_rows_added_to_the_lists_their_probes_found_are_where_faiss_would_add_them():
    """graph.add_rows puts each new row in its nearest probed list (no second quantizer search): the same index as
    faiss's own add, search for search."""
    import faiss

    rng = np.random.default_rng(11)
    x, _ = unit_vectors(rng, 20, 30, dim=16, spread=0.3)
    ours = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 24, faiss.METRIC_INNER_PRODUCT)
    ours.cp.min_points_per_centroid = 1
    ours.train(x[:300])
    ours.add(x[:300])
    theirs = faiss.clone_index(ours)
    ours.nprobe = theirs.nprobe = 5
    graph.add_rows(ours, x[300:], graph.probe_lists(ours, x[300:]))
    theirs.add(x[300:])
    assert ours.ntotal == theirs.ntotal == len(x)
    for a, b in zip(ours.search(x, 7), theirs.search(x, 7)):
        assert np.array_equal(a, b)


def test_an_inverted_file_index_grown_in_batches_keeps_nearly_every_true_neighbour(monkeypatch):
    """Past the exact range the join compares only the lists the IVF index probes: nearly exact still, and the
    neighbours-of-neighbours pass only adds true neighbours (same or higher recall, lists still valid)."""
    monkeypatch.setattr(graph, "EXACT_SEARCH_MAX_N", 1500)
    monkeypatch.setattr(graph, "IVF_PROBES", 4)
    rng = np.random.default_rng(3)
    x, _ = unit_vectors(rng, 80, 50, dim=32, spread=0.1)
    x = x[rng.permutation(len(x))]
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    exact = np.argpartition(-sims, 10, axis=1)[:, :10]
    recalls = {}
    for refine in (False, True):
        idx, dist = grow(x, [500] * 8, 10, refine=refine)
        graph.check_neighbours(graph.Neighbours(idx, dist), len(x))
        recalls[refine] = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(idx, exact)])
    assert recalls[True] >= max(0.95, recalls[False]), recalls


def test_revisiting_older_rows_only_brings_them_nearer_true_neighbours(monkeypatch):
    """graph.revisit_rows over every row of a kept graph with misses (few probes, no refine): each offer is a true
    distance, merging them never lengthens a list's k-th, and recall rises, most for the sparsest rows."""
    monkeypatch.setattr(graph, "EXACT_SEARCH_MAX_N", 1500)
    monkeypatch.setattr(graph, "IVF_PROBES", 1)
    rng = np.random.default_rng(5)
    x, _ = unit_vectors(rng, 80, 50, dim=32, spread=0.1)
    x = np.vstack([x, unit_vectors(rng, 400, 1, dim=32, spread=0.6)[0]])  # scattered rows: the sparse ones
    x = x[rng.permutation(len(x))]
    k = 10
    idx, dist = grow(x, [500] * (len(x) // 500) + [len(x) % 500], k, refine=False)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    exact = np.argpartition(-sims, k, axis=1)[:, :k]

    def recall(lists, rows):
        return np.mean([len(set(lists[r]) & set(exact[r])) / k for r in rows])

    rows = np.arange(len(x))
    to, cand, d = graph.revisit_rows(x, idx, dist[:, k - 1], rows, k)
    assert len(to) and np.allclose(d, graph.cosine_to_distance(np.einsum("ij,ij->i", x[to], x[cand])), atol=1e-5)
    before = recall(idx, rows)
    sparse = rows[dist[:, k - 1] >= np.quantile(dist[:, k - 1], 0.75)]
    sparse_before = recall(idx, sparse)
    touched, t_idx, t_dist = merge_neighbours(idx, dist, to, cand, d)
    assert np.all(t_dist[:, k - 1] <= dist[touched, k - 1] + 1e-6)
    idx[touched], dist[touched] = t_idx, t_dist
    graph.check_neighbours(graph.Neighbours(idx, dist), len(x))
    assert recall(idx, rows) > before and recall(idx, sparse) > sparse_before


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 40), st.integers(0, 60))
def test_the_compiled_loops_answer_as_numpy_does(seed, m, n):
    """graph_kernels against the whole-array numpy steps they replaced: the same cells in the same order; the same
    cosines to float32 rounding, -inf at the -1 candidates."""
    from service.clustering.graph_kernels import gathered_cosines, passing_pairs

    rng = np.random.default_rng(seed)
    sim = rng.random((m, n), dtype=np.float32)
    threshold, least = rng.random(n, dtype=np.float32), rng.random(m, dtype=np.float32)
    least[rng.random(m) < 0.2] = -np.inf
    qi, mi = np.nonzero(sim >= np.minimum(threshold, least[:, None]))
    s = sim[qi, mi]
    got = passing_pairs(sim, threshold, least)
    for a, b in zip(got, (qi, mi, s, s >= threshold[mi], s >= least[qi])):
        assert np.array_equal(a, b)
    vectors, _ = unit_vectors(rng, 3, 10, dim=24, spread=0.3)
    cand = rng.integers(-1, len(vectors), (m, 7))
    queries = vectors[rng.integers(0, len(vectors), m)]
    want = np.where(cand >= 0, np.einsum("qcd,qd->qc", vectors[np.maximum(cand, 0)].astype(np.float64), queries), -np.inf)
    assert np.allclose(gathered_cosines(vectors, cand, queries), want, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 30), st.integers(0, 200), st.integers(1, 6))
def test_each_querys_nearest_found_are_its_nearest_ties_in_the_order_found(seed, nq, m, width):
    from service.clustering.graph_kernels import nearest_per_query

    rng = np.random.default_rng(seed)
    q, row = rng.integers(0, nq, m), rng.integers(0, 1000, m)
    dist = (rng.integers(0, 8, m) / 4).astype(np.float32)  # many ties
    idx, out = nearest_per_query(q, row, dist, nq, width)
    for qq in range(nq):
        want = sorted((float(dist[i]), i) for i in range(m) if q[i] == qq)[:width]
        assert idx[qq].tolist() == [int(row[i]) for _, i in want] + [-1] * (width - len(want))
        assert out[qq].tolist() == [d for d, _ in want] + [np.inf] * (width - len(want))


def test_group_sums_read_in_place_answer_as_a_gathered_copy_did(tmp_path, monkeypatch):
    """centres.group_sums over a memory map, unit or not: the sums of the (scaled) grouped rows, as the copy of them
    (and unit_rows of every row) gave; rows in no group are not counted (NaN there changes nothing),
    zero rows stay zero; the lengths measured a few rows at a time are those measured all at once."""
    from service.clustering import centres
    from service.clustering.centres import group_sums, unit_rows

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((50, 6)) * rng.uniform(0.5, 3, (50, 1))).astype(np.float32)
    x[7] = 0
    group = rng.integers(-1, 4, 50)
    group[7] = 0
    rows = group >= 0
    x[~rows] = np.nan
    path = tmp_path / "v.f32"
    x.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=x.shape)
    whole = group_sums(mapped, group, 4, unit=True)[0]
    for unit in (False, True):
        sums, n = group_sums(mapped, group, 4, unit=unit)
        seen = unit_rows(x) if unit else x
        want = np.stack([seen[rows & (group == g)].sum(axis=0) for g in range(4)])
        assert np.allclose(sums, want, atol=1e-5)
        assert n.tolist() == [int((group == g).sum()) for g in range(4)]
    monkeypatch.setattr(centres, "_LENGTH_CHUNK", 7)
    assert np.array_equal(group_sums(mapped, group, 4, unit=True)[0], whole)
