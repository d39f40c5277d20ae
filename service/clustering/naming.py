"""Members -> keywords (class-based TF-IDF, BERTopic's c-TF-IDF idea) + representative headlines."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Name:
    keywords: tuple[str, ...]
    representatives: tuple[int, ...]  # row indices into the inputs, most central first


def name_clusters(texts: list[str], labels: np.ndarray, vectors: np.ndarray, n_keywords: int = 6, n_representatives: int = 3) -> dict[int, Name]:
    """Keywords weigh a term by its frequency in the cluster against its spread over all clusters,
    so words every story shares ("says", "new") sink and each story's own words rise."""
    from sklearn.feature_extraction.text import CountVectorizer

    cluster_labels = np.unique(labels[labels >= 0])
    if len(cluster_labels) == 0:
        return {}
    docs = [" ".join(texts[i] for i in np.flatnonzero(labels == c)) for c in cluster_labels]
    try:
        vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2), min_df=1, token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9\-]+\b")
        counts = vectorizer.fit_transform(docs).astype(np.float64)
    except ValueError:  # no usable words at all
        counts, vectorizer = None, None
    names: dict[int, Name] = {}
    if counts is not None:
        terms = vectorizer.get_feature_names_out()
        tf = counts.multiply(1.0 / np.maximum(counts.sum(axis=1), 1)).tocsr()
        avg_words = counts.sum() / len(cluster_labels)
        idf = np.log1p(avg_words / np.maximum(np.asarray(counts.sum(axis=0)).ravel(), 1))
        weights = tf.multiply(idf[None, :]).tocsr()
    for row, c in enumerate(cluster_labels):
        keywords: tuple[str, ...] = ()
        if counts is not None:
            w = weights.getrow(row)
            top = w.indices[np.argsort(-w.data, kind="stable")][: n_keywords * 4]
            keywords = _drop_contained(tuple(terms[t] for t in top))[:n_keywords]
        members = np.flatnonzero(labels == c)
        centre = vectors[members].mean(axis=0)
        closeness = vectors[members] @ centre
        reps = tuple(int(members[i]) for i in np.argsort(-closeness, kind="stable")[:n_representatives])
        names[int(c)] = Name(keywords=keywords, representatives=reps)
    return names


def _drop_contained(terms: tuple[str, ...]) -> tuple[str, ...]:
    """'contested ballots' and 'ballots districts' say one thing twice: a term sharing a word with a better one is dropped."""
    out, used = [], set()
    for t in terms:
        words = set(t.split())
        if words & used:
            continue
        used |= words
        out.append(t)
    return tuple(out)
