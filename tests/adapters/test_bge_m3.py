"""The BGE-M3 path through FlagEmbedding, on a tiny randomly initialised XLM-RoBERTa built and saved here.

Real BGE-M3 weights cannot be fetched in tests; this proves our loading and encoding code
works on a model folder laid out as BGE-M3's is (transformer + sparse_linear.pt + colbert_linear.pt).
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def tiny_m3(tmp_path_factory):
    import sentencepiece as spm
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    folder = tmp_path_factory.mktemp("tiny-bge-m3")
    corpus = ["wildfire forces evacuations", "central bank raises rates", "cup final ends in penalties",
              "volcano erupts and grounds flights", "election heads to a recount"] * 20
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(folder / "spm"), vocab_size=40, hard_vocab_limit=False,
                                   model_type="unigram", minloglevel=2)
    tok = XLMRobertaTokenizer(vocab_file=str(folder / "spm.model"))
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                           max_position_embeddings=130, pad_token_id=tok.pad_token_id)
    XLMRobertaModel(cfg).save_pretrained(folder)
    torch.save(torch.nn.Linear(32, 1).state_dict(), folder / "sparse_linear.pt")
    torch.save(torch.nn.Linear(32, 32).state_dict(), folder / "colbert_linear.pt")
    return folder


def test_bge_m3_embedder_loads_a_local_model_and_encodes(tiny_m3):
    from service.adapters.embedders import make_embedder

    e = make_embedder("bge-m3", str(tiny_m3), batch_size=4)
    texts = ["wildfire forces evacuations", "central bank raises rates", "a much longer headline about a volcano that erupts again"]
    v = e.embed(texts)
    assert v.shape == (3, 32) and e.dim == 32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # order is preserved although batches are sorted by length
    assert np.allclose(e.embed(texts[::-1])[::-1], v, atol=1e-5)


def test_bge_m3_in_bf16_stays_close_to_fp32(tiny_m3):
    from service.adapters.embedders import make_embedder

    texts = ["wildfire forces evacuations", "central bank raises rates"]
    full = make_embedder("bge-m3", str(tiny_m3), precision="fp32").embed(texts)
    half = make_embedder("bge-m3", str(tiny_m3), precision="bf16").embed(texts)
    assert half.dtype == np.float32 and ((full * half).sum(1) > 0.99).all()
    with pytest.raises(ValueError, match="MiniLM embedder only"):
        make_embedder("bge-m3", str(tiny_m3), precision="int8")


def test_unknown_embedder_is_a_clear_error():
    from service.adapters.embedders import make_embedder

    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder("word2vec")
