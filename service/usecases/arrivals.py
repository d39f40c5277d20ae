"""Arrivals between rebuilds: placed in the last rebuild's stories, and a new story noticed among those left as noise."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..clustering.assign import dense_groups, place, place_topics
from ..clustering.graph import knn

if TYPE_CHECKING:
    from ..ports import App


def assign_arrivals(app: App, ids: np.ndarray, vectors: np.ndarray) -> int:
    """Place arrivals in the last rebuild's stories from their stored neighbours; nothing to do before a first rebuild."""
    run = app.runs.latest_run()
    if run is None or len(ids) == 0:
        return 0
    pstate = app.prediction_state(run.id)
    if pstate is None or len(pstate.doc_ids) == 0:
        return 0
    k = app.settings.assign_neighbours
    # over-fetch: the arrivals themselves and other unfitted documents come back too and are dropped.
    # The writer's store answers from its live index (adapters/vector_cache.py), else Milvus searches.
    nb_ids, nb_dist = app.open_store().search(vectors, k + min(len(ids), 32))
    pos = pstate.positions(nb_ids.ravel()).reshape(nb_ids.shape)
    pos[nb_ids < 0] = -1
    around = np.where((nb_ids >= 0) & (nb_ids != np.asarray(ids)[:, None]), nb_dist, np.inf)  # every stored neighbour but itself
    placed = place(pstate, pos, nb_dist, app.settings.assign_min_vote, density_dist=around)
    topics = place_topics(pstate, pos, placed.labels)
    app.runs.record_predictions(run.id, ids, placed.labels, placed.probabilities, placed.outlier_scores, topics)
    return len(ids)


def new_story_in_noise_pool(app: App) -> bool:
    """Arrivals prediction left as noise, grouped among themselves: a group as big as the last run's
    smallest allowed cluster and as tight as the stories it found is a new story, worth a rebuild now."""
    run = app.runs.latest_run()
    if run is None:
        return False
    s = app.settings
    size = run.min_cluster_size_used or s.story_min_size
    pool = app.runs.noise_pool_ids(run.id)
    pstate = app.prediction_state(run.id)
    if len(pool) < size or pstate is None or len(pstate.cluster_max_edge) == 0:
        return False
    vectors = app.open_store().vectors_of(pool)
    groups = dense_groups(knn(vectors, s.knn_k), s.min_samples, float(np.median(pstate.cluster_max_edge)), int(size))
    return bool((groups >= 0).any())
