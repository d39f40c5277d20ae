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


def test_auto_device_on_a_machine_without_cuda_is_todays_cpu_embedder():
    """embed_device 'auto' picks CUDA only where torch sees a device; elsewhere it is the CPU path as it was:
    CPU, batch 64, the CPU's precision, the same vectors as asking for the CPU."""
    import pytest
    import torch

    from service.adapters.embedders import make_embedder, resolve_device, resolve_precision

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: 'auto' is CUDA here")
    assert resolve_device("auto") == "cpu"
    auto, cpu = make_embedder("minilm"), make_embedder("minilm", device="cpu", batch_size=64)
    assert (auto.device, auto.batch_size, auto.precision) == ("cpu", 64, resolve_precision("auto"))
    texts = ["Central bank raises rates again", "Local team wins the cup final"]
    assert np.array_equal(auto.embed(texts), cpu.embed(texts))
    with pytest.raises(ValueError, match="embed_device 'cuda'"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown embed_device"):
        resolve_device("tpu")


def test_gpu_precision_and_batch_are_the_measured_ones():
    """On CUDA 'auto' is fp32 (fp16 measured slower on an H200) at batch 1024; int8 is a CPU quantisation."""
    import pytest

    from service.adapters.embedders import DEVICE_BATCH, resolve_precision

    assert resolve_precision("auto", "cuda") == "fp32" and DEVICE_BATCH == {"cpu": 64, "cuda": 1024}
    with pytest.raises(ValueError, match="int8"):
        resolve_precision("int8", "cuda")


def test_embed_device_is_listed_by_help_settings():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "workers.console", "--help-settings"], capture_output=True, text=True, check=True).stdout
    assert "embed_device" in out and "auto" in out
