"""The pure core: graph, the fit as a rebuild runs it (fit_two_levels + settle), placement of arrivals, identity matching."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.clustering.assign import PredictionState, place
from service.clustering import graph
from service.clustering.graph import MIN_DISTANCE, knn, symmetric_graph
from service.clustering.identity import match_clusters
from service.clustering.levels import settle
from service.clustering.two_level import TwoLevelParams, fit_two_levels
from service.domain import NOISE

from ..conftest import unit_vectors


def fit(x, min_cluster_size=8, min_samples=3):
    """The stories a first rebuild ships (no previous run to settle against): fit_two_levels, then settle."""
    neigh = knn(x, 10)
    two = fit_two_levels(neigh, TwoLevelParams(story_min_cluster_size=min_cluster_size, min_samples=min_samples))
    return neigh, two, settle(two, neigh, x, None)


def state_from(ids, two, levels, min_samples=3):
    """The prediction state as the rebuild saves it, story ids numbered 0..s-1."""
    return PredictionState(doc_ids=ids, labels=levels.story_labels, probabilities=levels.story_probabilities,
                           outlier_scores=levels.story_outlier_scores, core_distances=two.core_distances,
                           cluster_ids=np.arange(levels.n_stories), cluster_max_edge=levels.story_max_edge,
                           cluster_min_core=levels.story_min_core, min_samples=min_samples)


def test_graph_is_symmetric_and_keeps_duplicates():
    rng = np.random.default_rng(0)
    x, _ = unit_vectors(rng, 3, 20)
    x[1] = x[0]  # an exact duplicate: distance 0 must stay an edge
    neigh = knn(x, 5)
    g = symmetric_graph(neigh)
    assert (g != g.T).nnz == 0
    assert g[0, 1] == MIN_DISTANCE or g[1, 0] == MIN_DISTANCE
    assert not np.any(neigh.indices == np.arange(len(x))[:, None])  # no self loops


def test_fast_hdbscan_on_the_lists_as_they_are_equals_on_our_symmetric_graph():
    """directed_graph hands fast_hdbscan the lists as they are (it symmetrises by the min itself): same result, less memory."""
    from fast_hdbscan.hdbscan import fast_hdbscan

    from service.clustering.graph import directed_graph

    rng = np.random.default_rng(4)
    x, _ = unit_vectors(rng, 6, 40, spread=0.15)
    x[1] = x[0]
    neigh = knn(x, 10)

    def run(g):
        return fast_hdbscan(g, metric="precomputed", min_samples=5, min_cluster_size=10)

    a = run(symmetric_graph(neigh))
    b = run(directed_graph(neigh))
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1])


def test_disconnected_graph_clusters_each_component():
    rng = np.random.default_rng(1)
    x, truth = unit_vectors(rng, 4, 30, spread=0.02)
    neigh, _, f = fit(x)
    g = symmetric_graph(neigh)
    from scipy.sparse.csgraph import connected_components

    assert connected_components(g)[0] >= 4  # the kNN graph falls apart into the groups
    assert f.n_stories == 4
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, f.story_labels) > 0.95


def test_single_document_and_empty():
    x = np.ones((1, 8), np.float32) / np.sqrt(8)
    neigh, _, f = fit(x)
    assert f.story_labels.tolist() == [NOISE] and f.n_stories == 0
    _, _, f0 = fit(np.zeros((0, 8), np.float32))
    assert len(f0.story_labels) == 0


def test_all_noise_when_nothing_is_dense():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    _, _, f = fit(x, min_cluster_size=30)
    assert f.n_stories <= 1  # uniform noise on a sphere has no real structure
    assert len(f.story_labels) == 40


def test_many_duplicates_do_not_break_the_fit():
    x = np.tile(np.eye(1, 16, dtype=np.float32), (30, 1))
    rng = np.random.default_rng(3)
    y, _ = unit_vectors(rng, 2, 20, dim=16)
    neigh, _, f = fit(np.vstack([x, y]))
    assert len(f.story_labels) == 70 and np.all(np.isfinite(f.story_outlier_scores))


def test_predict_on_fitted_documents_reproduces_their_labels():
    rng = np.random.default_rng(4)
    x, _ = unit_vectors(rng, 5, 25, spread=0.05)
    ids = np.arange(len(x), dtype=np.int64) * 3 + 11
    _, two, f = fit(x)
    assert f.n_stories >= 4
    s = state_from(ids, two, f)
    # query the fitted documents themselves: each finds itself at distance 0 first
    neigh = knn(np.vstack([x, x]), 10)
    pos = neigh.indices[: len(x)] % len(x)
    dist = neigh.distances[: len(x)]
    got = place(s, pos, dist)
    assert np.array_equal(got.labels, f.story_labels)


def test_arrivals_near_a_cluster_join_it_and_far_ones_are_noise():
    rng = np.random.default_rng(5)
    x, truth = unit_vectors(rng, 3, 40, dim=32, spread=0.03)
    ids = np.arange(len(x), dtype=np.int64)
    _, two, f = fit(x)
    s = state_from(ids, two, f)
    new = x[::10] + rng.normal(scale=0.01, size=x[::10].shape)
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    far = rng.normal(size=(5, 32))
    far /= np.linalg.norm(far, axis=1, keepdims=True)
    q = np.vstack([new, far]).astype(np.float32)
    sims = q @ x.T
    pos = np.argsort(-sims, axis=1)[:, :10]
    dist = np.sqrt(np.clip(2 - 2 * np.take_along_axis(sims, pos, axis=1), 0, 4)).astype(np.float32)
    got = place(s, pos, dist)
    near = got.labels[: len(new)]
    assert np.all((near == f.story_labels[::10]) | (near == NOISE))  # never a wrong cluster
    assert np.mean(near == f.story_labels[::10]) >= 0.9  # the rule is strict at the edges, by design
    assert np.all(got.labels[len(new):] == NOISE)
    assert np.all((got.probabilities >= 0) & (got.probabilities <= 1))
    assert np.all(got.outlier_scores[len(new):] > got.outlier_scores[: len(new)].max())


def test_identity_keeps_ids_when_nothing_changes():
    prev_docs = np.arange(100, dtype=np.int64)
    prev = np.repeat([7, 9, 12, NOISE], 25).astype(np.int64)
    new = np.repeat([2, 0, 1, NOISE], 25).astype(np.int64)  # same groups, numbered afresh
    m = match_clusters(prev_docs, prev, prev_docs, new, next_id=13)
    assert m.ids.tolist() == [9, 12, 7] and m.events == [] and m.next_id == 13


def test_identity_records_split_merge_birth_death():
    docs = np.arange(120, dtype=np.int64)
    prev = np.repeat([1, 2, 3, 4], 30).astype(np.int64)
    # 1 splits in two halves, 2 and 3 merge, 4 dies, and a new group is born from nothing
    new = np.concatenate([np.repeat([0, 1], 15), np.full(60, 2), np.full(30, NOISE)]).astype(np.int64)
    new_docs = docs
    m = match_clusters(docs, prev, new_docs, new, next_id=5)
    kinds = {(e.kind, e.cluster_id) for e in m.events}
    assert ("split", 1) in kinds and ("died", 4) in kinds
    assert any(k == "merged" for k, _ in kinds)
    gone = {1, 2, 3, 4} - set(m.ids.tolist())
    for g in gone:  # every id that disappears says why
        assert any(e.cluster_id == g and e.kind in ("died", "merged", "split") for e in m.events)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-1, max_value=6), min_size=1, max_size=80), st.randoms(use_true_random=False))
def test_identity_is_a_bijection_under_renumbering(labels, rnd):
    labels = np.array(labels, np.int64)
    docs = np.arange(len(labels), dtype=np.int64)
    present = sorted(set(labels[labels >= 0].tolist()))
    # previous run: the same groups under arbitrary persistent ids
    pids = rnd.sample(range(100, 200), len(present))
    to_prev = dict(zip(present, pids))
    prev = np.array([to_prev.get(int(v), NOISE) for v in labels], np.int64)
    dense = {c: i for i, c in enumerate(present)}
    new = np.array([dense.get(int(v), NOISE) for v in labels], np.int64)
    m = match_clusters(docs, prev, docs, new, next_id=500)
    assert [int(m.ids[dense[c]]) for c in present] == pids


def test_placement_without_any_cluster_is_noise():
    rng = np.random.default_rng(6)
    x, _ = unit_vectors(rng, 1, 3)
    _, two, f = fit(x)
    got = place(state_from(np.arange(3), two, f), np.array([[0, 1, 2]]), np.array([[0.1, 0.2, 0.3]], np.float32))
    assert got.labels.tolist() == [NOISE]


def test_stabilize_folds_a_split_of_old_documents_back_and_keeps_a_new_story():
    from service.clustering.identity import stabilize

    old_docs = np.arange(100, dtype=np.int64)
    prev = np.full(100, 7, np.int64)  # one old story of 100 documents
    new_docs = np.arange(140, dtype=np.int64)  # 40 new documents arrive
    # the new cut splits the old story in two and puts the 40 new documents in a third cluster
    new = np.concatenate([np.zeros(60), np.ones(40), np.full(40, 2)]).astype(np.int64)
    got = stabilize(old_docs, prev, new_docs, new)
    assert len(set(got[:100].tolist())) == 1  # the reshuffle of old documents is undone
    assert got[100] != got[0] and len(set(got[100:].tolist())) == 1  # the new story stands


def test_stabilize_gives_a_swallowed_old_cluster_its_block_back():
    from service.clustering.identity import stabilize

    docs = np.arange(90, dtype=np.int64)
    prev = np.repeat([1, 2], 45).astype(np.int64)
    new = np.zeros(90, np.int64)  # both old stories fall into one cluster, nothing new arrived
    got = stabilize(docs, prev, docs, new)
    assert len(set(got[:45].tolist())) == 1 and len(set(got[45:].tolist())) == 1 and got[0] != got[45]


def test_large_graphs_use_an_inverted_file_index_with_high_recall(monkeypatch):
    rng = np.random.default_rng(7)
    x, _ = unit_vectors(rng, 60, 50, dim=32, spread=0.08)
    exact = knn(x, 10)
    monkeypatch.setattr(graph, "EXACT_SEARCH_MAX_N", 1000)
    approx = knn(x, 10)
    assert type(graph.build_index(x)).__name__ == "IndexIVFFlat"
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.indices, exact.indices)])
    assert recall > 0.9
    assert not np.any(approx.indices == np.arange(len(x))[:, None])


def test_an_index_retrained_from_the_one_it_outgrew_starts_from_its_lists_and_keeps_recall(monkeypatch):
    rng = np.random.default_rng(11)
    x, _ = unit_vectors(rng, 80, 50, dim=32, spread=0.08)
    monkeypatch.setattr(graph, "EXACT_SEARCH_MAX_N", 1000)
    outgrown = graph.build_index(x[: len(x) // 2])
    assert graph.list_centres(graph.build_index(x[:500])) is None  # a flat index has no lists to start from
    old_centres = graph.list_centres(outgrown)
    started = []
    train = graph._train_lists
    monkeypatch.setattr(graph, "_train_lists", lambda index, sample, seed, start: (started.append(start), train(index, sample, seed, start)))
    retrained, scratch = graph.build_index(x, centres=old_centres), graph.build_index(x)
    assert np.array_equal(started[0], old_centres) and started[1] is None
    assert retrained.ntotal == len(x) and graph.list_centres(retrained).shape[0] > len(old_centres)
    exact = knn(x, 10)

    def recall(index) -> float:
        found = knn(x, 10, index=index)
        return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(found.indices, exact.indices)]))

    assert recall(retrained) >= recall(scratch) - 0.02


def test_merging_candidates_keeps_each_rows_k_nearest_distinct_others():
    idx = np.array([[1, 2], [0, -1], [0, 1]], np.int64)
    dist = np.array([[0.2, 0.5], [0.2, np.inf], [0.5, 0.6]], np.float32)
    touched, new_idx, new_dist = graph.merge_neighbours(idx, dist, np.array([0, 0, 1, 1]), np.array([3, 1, 3, 1]),
                                                        np.array([0.1, 0.3, 0.4, 0.0], np.float32))
    assert touched.tolist() == [0, 1]
    assert new_idx.tolist() == [[3, 1], [0, 3]]  # row 0: 3 is nearer than 1; 1 offered again at a worse distance changes nothing
    assert np.allclose(new_dist, [[0.1, 0.2], [0.2, 0.4]])  # row 1: itself is never its own neighbour


def test_a_subgraph_reindexes_and_drops_neighbours_outside():
    idx = np.array([[1, 2], [2, 0], [0, 1]], np.int64)
    dist = np.array([[0.1, 0.2], [0.3, 0.4], [0.2, 0.5]], np.float32)
    sub = graph.subgraph(graph.Neighbours(idx, dist), np.array([2, 0]), 3)
    assert sub.indices.tolist() == [[1, -1], [0, -1]] and np.isinf(sub.distances[:, 1]).all()


def test_dense_groups_finds_one_tight_group_among_scattered_points():
    from service.clustering.assign import dense_groups

    rng = np.random.default_rng(2)
    tight, _ = unit_vectors(rng, 1, 30, dim=32, spread=0.02)
    scattered, _ = unit_vectors(rng, 30, 1, dim=32, spread=0.0)
    x = np.vstack([scattered, tight])
    labels = dense_groups(knn(x, 10), 5, radius=0.3, min_size=20)
    assert (labels[30:] == 0).all() and (labels[:30] == NOISE).all()
    assert (dense_groups(knn(scattered, 10), 5, radius=0.3, min_size=20) == NOISE).all()


def test_rows_a_window_cut_short_are_searched_again_inside_it():
    rng = np.random.default_rng(4)
    x, _ = unit_vectors(rng, 5, 20, dim=16)
    full = knn(x, 6)
    keep = np.arange(0, 100, 2)
    completed = graph.complete_lists(graph.subgraph(full, keep, 100), x[keep])
    assert (completed.indices >= 0).all()
    assert np.array_equal(completed.indices, knn(x[keep], 6).indices)


def test_documents_outside_the_layout_sample_land_beside_their_neighbours():
    from service.clustering.layout import spread_over_graph

    rng = np.random.default_rng(6)
    x, group = unit_vectors(rng, 2, 40, dim=16, spread=0.05)
    neigh = knn(x, 8)
    xy = np.zeros((80, 2), np.float32)
    placed = np.zeros(80, dtype=bool)
    placed[[0, 1, 2, 40, 41, 42]] = True  # the "sample": three of each group, far apart on the map
    xy[[0, 1, 2]] = [-10, 0]
    xy[[40, 41, 42]] = [10, 0]
    out = spread_over_graph(xy, placed, neigh, rng)
    assert np.all(np.sign(out[:, 0]) == np.where(group == 0, -1, 1))


def test_a_vote_keeps_an_arrival_between_clusters_out_until_the_rebuild():
    state = PredictionState(doc_ids=np.arange(6), labels=np.array([7, 7, 9, 9, 9, NOISE]), probabilities=np.ones(6, np.float32),
                            outlier_scores=np.zeros(6, np.float32), core_distances=np.full(6, 0.1, np.float32),
                            cluster_ids=np.array([7, 9]), cluster_max_edge=np.array([1.0, 1.0], np.float32),
                            cluster_min_core=np.array([0.1, 0.1], np.float32), min_samples=1)
    pos = np.array([[0, 2, 3, 4, 5]])
    dist = np.array([[0.30, 0.32, 0.33, 0.34, 0.35]], np.float32)  # nearest is in 7, most of the neighbourhood in 9
    assert place(state, pos, dist).labels.tolist() == [7]
    assert place(state, pos, dist, min_vote=0.5).labels.tolist() == [NOISE]
    assert place(state, np.array([[2, 3, 4, 0, 5]]), dist, min_vote=0.5).labels.tolist() == [9]


def test_stabilize_lets_a_split_carried_by_new_documents_stand():
    from service.clustering.identity import stabilize

    old_docs = np.arange(100, dtype=np.int64)
    prev = np.full(100, 7, np.int64)
    new_docs = np.arange(260, dtype=np.int64)  # 160 new documents arrive
    # the old story continues in cluster 0; cluster 1 is 40 of its old documents beside 160 new ones
    new = np.concatenate([np.zeros(60), np.ones(40), np.ones(160)]).astype(np.int64)
    got = stabilize(old_docs, prev, new_docs, new)
    assert len(set(got.tolist())) == 2 and got[95] == got[150] != got[0]


def test_stabilize_holds_old_documents_that_drift_out_of_a_living_story_one_by_one():
    from service.clustering.identity import stabilize

    old_docs = np.arange(100, dtype=np.int64)
    prev = np.full(100, 7, np.int64)
    new_docs = np.arange(190, dtype=np.int64)
    # a new story of 90 new documents takes 10 of the old story's documents along: too few to be a block
    new = np.concatenate([np.zeros(90), np.ones(10), np.ones(90)]).astype(np.int64)
    got = stabilize(old_docs, prev, new_docs, new)
    assert len(set(got[:100].tolist())) == 1 and got[150] != got[0] and len(set(got[100:].tolist())) == 1


def test_identity_follows_a_story_that_grew_many_times_over():
    prev_docs = np.arange(40, dtype=np.int64)
    prev = np.repeat([3, 5], 20).astype(np.int64)
    new_docs = np.arange(240, dtype=np.int64)
    # story 3 grows from 20 to 220 headlines; story 5 is unchanged
    new = np.concatenate([np.zeros(20), np.ones(20), np.zeros(200)]).astype(np.int64)
    m = match_clusters(prev_docs, prev, new_docs, new, next_id=6)
    assert m.ids.tolist() == [3, 5] and [(e.kind, e.cluster_id, e.size_after) for e in m.events] == [("grew", 3, 220)]


def test_identity_matching_scales_with_sparse_overlaps():
    """Thousands of clusters on each side: no dense old x new matrix, no global Hungarian."""
    rng = np.random.default_rng(3)
    docs = np.arange(200_000, dtype=np.int64)
    prev = (docs // 40 + 10).astype(np.int64)  # 5,000 old clusters of 40
    new = rng.permutation(5000)[docs // 40]
    new[rng.random(len(docs)) < 0.05] = NOISE
    m = match_clusters(docs, prev, docs, new, next_id=6000)
    assert (m.ids[new[::40][new[::40] >= 0]] == prev[::40][new[::40] >= 0]).all()


def test_stabilize_lets_a_document_clearly_nearer_the_other_story_move():
    """The hold is for drift between blurred sub-topics, not for a headline that was in the wrong story."""
    from service.clustering.identity import stabilize

    rng = np.random.default_rng(5)
    a_dir, b_dir = np.eye(16, dtype=np.float32)[0], np.eye(16, dtype=np.float32)[1]
    mid = (a_dir + b_dir) / np.sqrt(2)

    def around(centre, n):
        x = centre + 0.05 * rng.standard_normal((n, 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    old_docs = np.arange(100, dtype=np.int64)
    prev = np.full(100, 7, np.int64)
    new_docs = np.arange(190, dtype=np.int64)
    new = np.concatenate([np.zeros(90), np.ones(10), np.ones(90)]).astype(np.int64)
    # 10 old documents that sit in story B's heart, and 10 on the border between the two
    crisp = np.vstack([around(a_dir, 90), around(b_dir, 10), around(b_dir, 90)])
    blurred = np.vstack([around(a_dir, 90), around(mid, 10), around(b_dir, 90)])
    moved = stabilize(old_docs, prev, new_docs, new, vectors=crisp)
    held = stabilize(old_docs, prev, new_docs, new, vectors=blurred)
    assert (moved[90:100] == moved[150]).all() and moved[0] != moved[150]
    assert (held[90:100] == held[0]).all() and held[0] != held[150]


def test_twins_are_at_distance_zero_whatever_rounding_the_search_did():
    """Milvus returned 1 - 7e-7 for identical unit vectors; as a distance that was 1.2e-3, not a duplicate."""
    from service.clustering.assign import DUPLICATE_DISTANCE
    from service.clustering.graph import cosine_to_distance

    got = cosine_to_distance(np.array([1.0, 1.0 - 7e-7, 1.0000001, 0.9], np.float32))
    assert (got[:3] <= DUPLICATE_DISTANCE).all() and got[3] > 0.4


def test_stabilize_lets_a_merge_of_a_small_old_block_stand_but_undoes_a_large_one():
    from service.clustering.identity import stabilize

    # 20 old stories of 50 documents; the new cut joins story 1 (20 documents, 2% of what was clustered) into story 0
    # and, in the second case, story 3 (50 documents, 5%) into story 2: within the budget the fit's merge stands
    # (an early wrong split is not kept forever), beyond it the block gets its own label back (ids stay put)
    sizes = [50, 20] + [50] * 18
    prev = np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)
    docs = np.arange(len(prev), dtype=np.int64)
    new = prev.copy()
    new[prev == 1] = 0
    got = stabilize(docs, prev, docs, new)
    assert got[prev == 1][0] == got[prev == 0][0]
    new[prev == 3] = 2
    got = stabilize(docs, prev, docs, new)
    assert got[prev == 1][0] == got[prev == 0][0] and got[prev == 3][0] != got[prev == 2][0]
    held = stabilize(docs, prev, docs, new, merge_budget=0.0)
    assert held[prev == 1][0] != held[prev == 0][0]


def test_an_arrival_sparser_than_nearly_all_of_a_story_waits_for_the_rebuild():
    from service.clustering.levels import placing_threshold

    # one story: 10 members with core distances 0.30..0.48 and one loose member that stretched its MST to 1.2
    core = np.array([0.30, 0.32, 0.34, 0.36, 0.38, 0.40, 0.42, 0.44, 0.46, 0.48, 1.2, 0.9], np.float32)
    labels = np.array([0] * 11 + [NOISE], np.int64)
    threshold = placing_threshold(np.array([1.2], np.float32), core, labels)
    assert 0.46 <= threshold[0] <= 0.48  # 9 in 10 of its members are at least this dense
    state = PredictionState(doc_ids=np.arange(12, dtype=np.int64), labels=labels, probabilities=np.ones(12, np.float32),
                            outlier_scores=np.zeros(12, np.float32), core_distances=core, cluster_ids=np.array([0]),
                            cluster_max_edge=threshold, cluster_min_core=np.array([0.3], np.float32), min_samples=2)
    pos = np.array([[0, 1, 2], [0, 1, 2]])
    dist = np.array([[0.35, 0.40, 0.45], [1.0, 1.05, 1.1]], np.float32)  # a close arrival; one out where new stories grow
    got = place(state, pos, dist).labels
    assert got[0] == 0 and got[1] == NOISE
    loose = place(replace(state, cluster_max_edge=np.array([1.2], np.float32)), pos, dist).labels
    assert loose[1] == 0  # the loosest MST edge alone let it in


def _one_story(core, probs, max_edge, min_samples=2):
    n = len(core)
    return PredictionState(doc_ids=np.arange(n), labels=np.full(n, 7), probabilities=np.asarray(probs, np.float32),
                           outlier_scores=np.zeros(n, np.float32), core_distances=np.asarray(core, np.float32),
                           cluster_ids=np.array([7]), cluster_max_edge=np.array([max_edge], np.float32),
                           cluster_min_core=np.array([min(core)], np.float32), min_samples=min_samples)


def test_an_arrival_among_a_storys_own_documents_joins_by_the_storys_sparsest_member():
    # threshold (capped) 0.3; the story's sparsest member is at 0.5; the arrival links at 0.4
    state = _one_story([0.2, 0.2, 0.2, 0.5], np.ones(4), 0.3)
    pos = np.array([[0, 1, 2, -1]])
    dist = np.array([[0.40, 0.42, 0.44, 0.05]], np.float32)
    assert place(state, pos, dist).labels.tolist() == [NOISE]  # no neighbourhood given: the capped threshold alone
    # its nearest stored documents are the story's members: inside the story's body
    assert place(state, pos, dist, density_dist=np.array([[0.40, 0.42, 0.44, 0.9]], np.float32)).labels.tolist() == [7]
    # its nearest stored documents are fellow arrivals (not fitted): a group of its own, it waits for the rebuild
    pos2, dist2 = np.array([[0, -1, -1, -1]]), np.array([[0.40, 0.05, 0.06, 0.07]], np.float32)
    assert place(state, pos2, dist2, density_dist=dist2).labels.tolist() == [NOISE]
    # beyond the sparsest member's core distance: noise even inside the body
    far = np.array([[0.60, 0.62, 0.64, 0.9]], np.float32)
    assert place(state, pos, far, density_dist=far).labels.tolist() == [NOISE]


def test_an_arrival_that_touches_only_a_storys_fringe_waits_for_the_rebuild():
    # members 0-6 are the story's core (probability 1), 7 its fringe (0.4)
    state = _one_story(np.full(8, 0.1), [1, 1, 1, 1, 1, 1, 1, 0.4], 1.0)
    dist = np.array([[0.2, 0.25]], np.float32)
    assert place(state, np.array([[7, 0]]), dist).labels.tolist() == [7]
    assert place(state, np.array([[7, -1]]), dist).labels.tolist() == [NOISE]


def test_members_held_in_from_noise_neither_lower_the_fringe_bar_nor_loosen_the_body_ceiling():
    # a story whose fit gave 6 members probability > 0; 3 more were held in from noise (probability 0), one of them
    # with a core over too few neighbours (inf): counted, they would bring the fringe quantile to 0 and the sparsest
    # member's core to inf, and an arrival touching only them, or linking far, would be placed
    core = [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, np.inf, 0.45]
    state = _one_story(core, [1, 1, 1, 0.9, 0.9, 0.8, 0, 0, 0], 0.3)
    dist = np.array([[0.2]], np.float32)
    assert place(state, np.array([[6]]), dist).labels.tolist() == [NOISE]  # only a held member among its neighbours
    pos = np.array([[0, 1, 2, 3]])
    far = np.array([[5.0, 5.0, 5.0, 5.0]], np.float32)  # inside the body, but far beyond every fitted core
    assert place(state, pos, far, density_dist=far).labels.tolist() == [NOISE]
