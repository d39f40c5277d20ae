"""Synthetic embeddings shaped like news: many story centres on the unit sphere, Zipf-sized, plus background."""

from __future__ import annotations

import numpy as np


def news_like_vectors(n: int, dim: int = 384, seed: int = 0, docs_per_story: int = 50, background: float = 0.1,
                      spread: float = 0.045) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, story per row; -1 = background). spread 0.045 in 384-d puts members at cos ≈ 0.75 to their centre."""
    rng = np.random.default_rng(seed)
    stories = max(1, n // docs_per_story)
    sizes = 1.0 / np.arange(1, stories + 1) ** 0.8
    n_story = int(n * (1 - background))
    story = rng.choice(stories, size=n_story, p=sizes / sizes.sum())
    out = np.empty((n, dim), np.float32)
    labels = np.full(n, -1, np.int64)
    labels[:n_story] = story
    step = 100_000
    for s in range(0, n, step):
        e = min(n, s + step)
        block = rng.standard_normal((e - s, dim)).astype(np.float32)
        rows = np.arange(s, e)
        in_story = rows < n_story
        if in_story.any():
            centres = _centres(labels[rows[in_story]], dim, seed)
            block[in_story] = centres + spread * block[in_story]
        out[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    perm = rng.permutation(n)
    return out[perm], labels[perm]


def _centres(ids: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Each story's centre comes from its own seed, so any block can make it without holding all centres."""
    uniq, inv = np.unique(ids, return_inverse=True)
    c = np.stack([np.random.default_rng((seed, int(u))).standard_normal(dim) for u in uniq]).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return c[inv]
