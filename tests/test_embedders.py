"""The bundled MiniLM's reading length and its opt-in int8 variant, on the real model."""

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
    q = make_embedder("minilm", int8=True)
    full, small = embedder.embed(texts), q.embed(texts)
    assert np.allclose(np.linalg.norm(small, axis=1), 1, atol=1e-5)
    assert ((full * small).sum(1) > 0.9).all() and "int8" in q.name
