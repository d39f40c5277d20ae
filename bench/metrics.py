"""Clustering quality figures shared by the benchmarks: AMI/ARI (noise as one label), pairwise and BCubed
precision/recall/F1 (noise documents as singletons)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score
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


def singletons(labels: np.ndarray) -> np.ndarray:
    """Each noise document its own cluster, every label renumbered 0..c-1."""
    labels = np.asarray(labels).copy()
    noise = labels < 0
    labels[noise] = labels.max(initial=-1) + 1 + np.arange(int(noise.sum()))
    return np.unique(labels, return_inverse=True)[1]


def bcubed_prf(truth: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """BCubed (Bagga & Baldwin): per document, the share of its cluster that shares its true label (precision)
    and the share of its true group that shares its cluster (recall), averaged; noise documents are singletons
    (precision 1, recall 1/|its true group|)."""
    truth = np.unique(np.asarray(truth), return_inverse=True)[1]
    lab = singletons(labels)
    c = contingency_matrix(truth, lab, sparse=True).tocoo()
    n = len(truth)
    if not n:
        return 0.0, 0.0, 0.0
    both = c.data.astype(np.float64) ** 2  # each of the n_ij documents in cell (i, j) scores n_ij / size
    p = float((both / np.bincount(lab)[c.col]).sum() / n)
    r = float((both / np.bincount(truth)[c.row]).sum() / n)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def ami(truth: np.ndarray, labels: np.ndarray) -> float:
    """Adjusted mutual information (arithmetic normalisation, as sklearn's default), fast for many clusters.

    sklearn's expected-MI term loops over every pair of clusters: at 1M documents in ~30k clusters
    per side it did not finish in an hour. The expectation depends only on the two multisets of
    cluster sizes, so it is summed over distinct sizes, weighted by how often each occurs
    (stories have a few hundred distinct sizes). Equal to sklearn's to ~1e-9 (tests/bench/test_bench_metrics.py).
    """
    from scipy.special import gammaln

    truth = np.unique(np.asarray(truth), return_inverse=True)[1].ravel()
    labels = np.unique(np.asarray(labels), return_inverse=True)[1].ravel()
    n = len(truth)
    a, b = np.bincount(truth), np.bincount(labels)
    if len(a) == len(b) == 1 or len(a) == len(b) == 0 or (len(a) == len(b) == n):
        return 1.0
    c = contingency_matrix(truth, labels, sparse=True).tocoo()
    nij = c.data.astype(np.float64)
    mi = float((nij / n * (np.log(nij) + np.log(n) - np.log(a[c.row].astype(np.float64)) - np.log(b[c.col].astype(np.float64)))).sum())
    h = lambda x: float(-(x / n * np.log(x / n)).sum())  # noqa: E731
    ua, ca = np.unique(a, return_counts=True)
    ub, cb = np.unique(b, return_counts=True)
    ubf, cbf = ub.astype(np.float64), cb.astype(np.float64)
    lg_n = gammaln(n + 1)
    lg_b, lg_nb = gammaln(ubf + 1), gammaln(n - ubf + 1)
    emi = 0.0
    for av, count in zip(ua.astype(np.float64).tolist(), ca.tolist()):
        fixed = gammaln(av + 1) + gammaln(n - av + 1) - lg_n + lg_b + lg_nb
        lo = np.maximum(1.0, av + ubf - n)
        hi = np.minimum(av, ubf)
        for k in range(int(lo.min()), int(hi.max()) + 1):
            ok = (lo <= k) & (k <= hi)
            if not ok.any():
                continue
            bb = ubf[ok]
            lp = fixed[ok] - gammaln(k + 1) - gammaln(av - k + 1) - gammaln(bb - k + 1) - gammaln(n - av - bb + k + 1)
            emi += count * float((cbf[ok] * (k / n) * (np.log(n * k) - np.log(av * bb)) * np.exp(lp)).sum())
    normalizer = 0.5 * (h(a.astype(np.float64)) + h(b.astype(np.float64)))
    denominator = normalizer - emi
    eps = np.finfo(np.float64).eps
    denominator = min(denominator, -eps) if denominator < 0 else max(denominator, eps)
    return float((mi - emi) / denominator)


def scores(truth: np.ndarray, labels: np.ndarray) -> dict:
    labels = np.asarray(labels)
    clustered = labels >= 0
    p, r, f = pairwise_prf(truth, labels)
    bp, br, bf = bcubed_prf(truth, labels)
    return {
        "ami_all": round(ami(truth, labels), 4),
        "ari_all": round(float(adjusted_rand_score(truth, labels)), 4),
        "ami_clustered": round(ami(truth[clustered], labels[clustered]), 4) if clustered.any() else 0.0,
        "ari_clustered": round(float(adjusted_rand_score(truth[clustered], labels[clustered])), 4) if clustered.any() else 0.0,
        "pair_precision": round(p, 4),
        "pair_recall": round(r, 4),
        "pair_f1": round(f, 4),
        "bcubed_precision": round(bp, 4),
        "bcubed_recall": round(br, 4),
        "bcubed_f1": round(bf, 4),
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
