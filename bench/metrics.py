"""Clustering quality figures shared by the benchmarks: AMI/ARI, pairwise precision/recall/F1."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix


def _pairs(x: np.ndarray) -> float:
    return float((x * (x - 1) / 2).sum())


def pairwise_prf(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Pairs of documents put together vs pairs that belong together; noise pairs with nothing."""
    clustered = labels >= 0
    c = contingency_matrix(truth[clustered], labels[clustered], sparse=True)
    tp = _pairs(c.data.astype(np.float64))
    pred_pairs = _pairs(np.bincount(labels[clustered]).astype(np.float64))
    true_pairs = _pairs(np.unique(truth, return_counts=True)[1].astype(np.float64))
    p = tp / pred_pairs if pred_pairs else 0.0
    r = tp / true_pairs if true_pairs else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    labels = np.asarray(labels)
    clustered = labels >= 0
    p, r, f = pairwise_prf(truth, labels)
    return {
        "ami_all": round(float(adjusted_mutual_info_score(truth, labels)), 4),
        "ari_all": round(float(adjusted_rand_score(truth, labels)), 4),
        "ami_clustered": round(float(adjusted_mutual_info_score(truth[clustered], labels[clustered])), 4) if clustered.any() else 0.0,
        "ari_clustered": round(float(adjusted_rand_score(truth[clustered], labels[clustered])), 4) if clustered.any() else 0.0,
        "pair_precision": round(p, 4),
        "pair_recall": round(r, 4),
        "pair_f1": round(f, 4),
        "noise_share": round(float(1 - clustered.mean()), 4),
        "clusters": int(len(np.unique(labels[clustered]))),
    }


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). Not getrusage's ru_maxrss: that survives execve,
    so a child started from a big parent would report the parent's peak."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
