"""The scale bench's story-shaped corpus: sizes, truth, geometry, and the cosine profile it is matched by."""

from __future__ import annotations

import numpy as np

from bench.synthetic import QUANTILES, StoryShape, cosine_profile, story_shaped_vectors


def test_story_shaped_corpus_truth_and_sizes():
    v, story, topic = story_shaped_vectors(6_000, seed=3)
    assert v.shape == (6_000, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    background = story < 0
    assert abs(background.mean() - 0.10) < 0.01
    assert (topic[background] == -1).all() and (topic[~background] >= 0).all()
    sizes = np.bincount(story[~background])
    sizes = sizes[sizes > 0]
    assert sizes.min() >= StoryShape().min_story and sizes.max() <= StoryShape().max_story + StoryShape().min_story
    assert np.median(sizes) < 20 < sizes.max()  # heavy-tailed: many small stories, a few large
    # every story sits in exactly one topic
    pairs = np.unique(np.stack([story[~background], topic[~background]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1]
    # deterministic by seed
    v2, story2, _ = story_shaped_vectors(6_000, seed=3)
    assert np.array_equal(story, story2) and np.allclose(v, v2)


def test_story_shaped_geometry_is_layered():
    """Headlines of one story are closer than stories of one topic, which are closer than unrelated stories."""
    v, story, topic = story_shaped_vectors(8_000, seed=1)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(v), 60_000), rng.integers(0, len(v), 60_000)
    cos = np.einsum("ij,ij->i", v[a], v[b])
    real = (story[a] >= 0) & (story[b] >= 0) & (a != b)
    same_story = real & (story[a] == story[b])
    same_topic = real & (story[a] != story[b]) & (topic[a] == topic[b])
    other = real & (topic[a] != topic[b])
    assert cos[same_story].mean() > cos[same_topic].mean() + 0.2 > cos[other].mean() + 0.2


def test_cosine_profile_keys_and_quantiles():
    v, story, _ = story_shaped_vectors(3_000, seed=2)
    prof = cosine_profile(v, story, probe=200)
    for key in ("within_story_pair", "between_story_pair", "to_own_centroid", "nearest_other_centroid", "nn_cos"):
        assert len(prof[key]) == len(QUANTILES)
        assert prof[key] == sorted(prof[key])
    assert np.median(prof["within_story_pair"]) > np.median(prof["between_story_pair"])
    assert 0.9 <= prof["nn_same_story"][0] <= 1.0


def test_topic_structured_stream_has_broad_topics_and_a_tail_of_one_or_two_stories():
    from bench.synthetic import topic_structured_vectors

    v, story, topic = topic_structured_vectors(20_000, seed=1)
    clustered = story >= 0
    pairs = np.unique(np.stack([story[clustered], topic[clustered]]), axis=1)
    per_topic = np.bincount(pairs[1])
    per_topic = per_topic[per_topic > 0]
    assert per_topic.max() >= 100 and (per_topic <= 2).sum() >= 3  # Zipf: broad topics and a tail
    assert np.bincount(topic[topic >= 0]).max() / len(v) < 0.25  # no true topic breaks the share guard by itself
    same_topic = (topic[:2000, None] == topic[None, :2000]) & (story[:2000, None] != story[None, :2000]) & clustered[:2000, None]
    other = (topic[:2000, None] != topic[None, :2000]) & clustered[:2000, None] & clustered[None, :2000]
    cos = v[:2000] @ v[:2000].T
    assert cos[same_topic].mean() > cos[other].mean() + 0.1  # stories of one topic sit closer than stories of two
