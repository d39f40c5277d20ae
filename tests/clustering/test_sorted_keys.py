"""sorted_keys: where keys stand in a sorted array (find_sorted) or an unsorted one (find_rows), and whether they are there."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from service.sorted_keys import find_rows, find_sorted


def test_keys_found_and_absent_below_between_and_above():
    at, found = find_sorted(np.array([10, 20, 30], np.int64), np.array([20, 5, 15, 30, 35, 10], np.int64))
    assert found.tolist() == [True, False, False, True, False, True]
    assert at[found].tolist() == [1, 2, 0]
    assert at.tolist() == [1, 0, 1, 2, 2, 0]  # absent: where it would go, the last row past the end


def test_empty_arrays():
    at, found = find_sorted(np.zeros(0, np.int64), np.array([3, 1], np.int64))
    assert at.tolist() == [0, 0] and found.tolist() == [False, False]
    at, found = find_sorted(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert at.shape == found.shape == (0,) and found.dtype == bool
    at, found = find_sorted(np.array([1, 2], np.int64), np.zeros(0, np.int64))
    assert at.shape == found.shape == (0,)


def test_one_key_as_a_scalar():
    story_ids = np.array([4, 9], np.int64)
    assert [(int(a), bool(f)) for a, f in (find_sorted(story_ids, k) for k in (9, 5, 12))] == [(1, True), (1, False), (1, False)]
    at, found = find_sorted(np.zeros(0, np.int64), 3)
    assert int(at) == 0 and not found


@given(st.lists(st.integers(-50, 50), unique=True), st.lists(st.integers(-60, 60)))
def test_positions_of_found_keys_and_only_those(sorted_keys, keys):
    sorted_keys, keys = np.array(sorted(sorted_keys), np.int64), np.array(keys, np.int64)
    at, found = find_sorted(sorted_keys, keys)
    assert found.tolist() == [k in set(sorted_keys.tolist()) for k in keys.tolist()]
    assert np.array_equal(sorted_keys[at[found]], keys[found])
    assert ((at >= 0) & (at < max(len(sorted_keys), 1))).all()


@given(st.lists(st.integers(-50, 50), unique=True), st.lists(st.integers(-60, 60)))
def test_rows_of_keys_in_an_unsorted_array(keys, wanted):
    keys, wanted = np.array(keys, np.int64), np.array(wanted, np.int64)
    rows, found = find_rows(keys, wanted)
    assert found.tolist() == [w in set(keys.tolist()) for w in wanted.tolist()]
    assert np.array_equal(keys[rows[found]], wanted[found])
    assert rows.shape == wanted.shape
