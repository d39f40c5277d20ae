"""The bundled MiniLM's reading length and its arithmetic (fp32, bf16, int8), on the real model."""

from __future__ import annotations

import numpy as np


def test_text_past_max_tokens_does_not_change_the_vector():
    from service.adapters.embedders import make_embedder

    e = make_embedder("minilm", max_tokens=16)
    head = "Storm closes the harbour as fishermen wait for the wind to drop on the coast"
    a, b = e.embed([head, head + " and then a long tail of words that the model never reads " * 5])
    assert np.allclose(a, b, atol=1e-5)


def test_int8_vectors_stay_close_to_full_precision(embedder):
    from service.adapters.embedders import make_embedder

    texts = ["Central bank raises rates again", "Local team wins the cup final", "New phone unveiled at trade show"]
    q = make_embedder("minilm", precision="int8")
    full, small = make_embedder("minilm", precision="fp32").embed(texts), q.embed(texts)
    assert np.allclose(np.linalg.norm(small, axis=1), 1, atol=1e-5)
    assert ((full * small).sum(1) > 0.9).all() and "int8" in q.name


def test_bf16_vectors_match_fp32():
    """bf16 is what 'auto' picks on CPUs with native bf16, so it must not move the clusters."""
    from service.adapters.embedders import make_embedder

    texts = ["Central bank raises rates again", "Local team wins the cup final", "New phone unveiled at trade show"]
    full = make_embedder("minilm", precision="fp32").embed(texts)
    half = make_embedder("minilm", precision="bf16").embed(texts)
    assert half.dtype == np.float32 and np.allclose(np.linalg.norm(half, axis=1), 1, atol=1e-5)
    assert ((full * half).sum(1) > 0.999).all()


def test_unknown_precision_is_a_clear_error():
    import pytest

    from service.adapters.embedders import make_embedder

    with pytest.raises(ValueError, match="embed_precision"):
        make_embedder("minilm", precision="fp8")
