"""bench/metrics.py's AMI: sklearn's figure, computed over distinct cluster sizes so 1M documents in 30k clusters finish."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_mutual_info_score

from bench.metrics import ami


@pytest.mark.parametrize("n,true_k,found_k", [(50, 3, 4), (2_000, 40, 70), (6_000, 300, 250)])
def test_ami_equals_sklearns(n, true_k, found_k):
    rng = np.random.default_rng(n)
    truth = rng.integers(0, true_k, n)
    found = np.where(rng.random(n) < 0.7, truth, rng.integers(-1, found_k, n))  # -1: noise, one label
    assert ami(truth, found) == pytest.approx(adjusted_mutual_info_score(truth, found), abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(-1, 5)), min_size=1, max_size=60))
def test_ami_equals_sklearns_on_any_small_labelling(pairs):
    truth, found = (np.array(x) for x in zip(*pairs))
    assert ami(truth, found) == pytest.approx(adjusted_mutual_info_score(truth, found), abs=1e-9)
