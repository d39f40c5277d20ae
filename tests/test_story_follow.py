"""A story keeps meaning one event: ids follow content, arrivals join running stories, alerts are worth reading."""

from __future__ import annotations

import numpy as np

from service.clustering.identity import match_clusters, previous_clusters, split_drifted
from service.domain import NOISE


def _event_vectors(rng, centre, n, spread=0.05):
    x = centre + rng.normal(scale=spread, size=(n, len(centre)))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _two_events(rng, dim=32, cos=0.5):
    """Two event centres at the given cosine: one franchise, two events."""
    a = rng.normal(size=dim)
    a /= np.linalg.norm(a)
    b = rng.normal(size=dim)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    return a, cos * a + np.sqrt(1 - cos**2) * b


def test_a_second_event_arriving_in_bulk_does_not_take_the_first_events_id():
    rng = np.random.default_rng(0)
    a, b = _two_events(rng)
    old_a, new_a, new_b = _event_vectors(rng, a, 30), _event_vectors(rng, a, 8), _event_vectors(rng, b, 80)
    vectors = np.vstack([old_a, new_a, new_b])
    doc_ids = np.arange(len(vectors), dtype=np.int64)
    prev_doc_ids, prev_labels = doc_ids[:30], np.full(30, 14, np.int64)  # last run: story 14 = event a
    fit = np.zeros(len(vectors), np.int64)  # this fit joined both events in one cluster
    prev_ids, old_of = previous_clusters(prev_doc_ids, prev_labels, doc_ids)

    labels, checks = split_drifted(fit, old_of, prev_ids, vectors, min_size=5)

    assert (labels[:38] == labels[0]).all(), "the first event, old and new headlines, stays together"
    assert (labels[38:] != labels[0]).all() and (labels[38:] >= 0).all()
    [check] = checks
    assert check.old_id == 14 and check.old_members == 30 and check.new_members == 88 and check.split_label == labels[38]
    assert check.cosine < 0.8
    m = match_clusters(prev_doc_ids, prev_labels, doc_ids, labels, next_id=100,
                       drifted_from={check.split_label: check.old_id})
    assert m.ids[labels[0]] == 14, "the id stays with the event it was born with"
    born = [e for e in m.events if e.kind == "born"]
    assert [(e.cluster_id, e.parents) for e in born] == [(100, (14,))]


def test_a_story_that_grows_within_its_event_keeps_one_cluster():
    rng = np.random.default_rng(1)
    a, _ = _two_events(rng)
    vectors = np.vstack([_event_vectors(rng, a, 20), _event_vectors(rng, a, 200)])
    doc_ids = np.arange(len(vectors), dtype=np.int64)
    prev_ids, old_of = previous_clusters(doc_ids[:20], np.full(20, 3, np.int64), doc_ids)
    labels, checks = split_drifted(np.zeros(len(vectors), np.int64), old_of, prev_ids, vectors, min_size=5)
    assert (labels == 0).all()
    assert len(checks) == 1 and checks[0].split_label == NOISE and checks[0].cosine > 0.9
