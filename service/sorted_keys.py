"""Finding keys in a sorted array: the one lookup that clustering, the use cases and the adapters all make of ids.

Pure numpy, no other import: every layer may use it.
"""

from __future__ import annotations

import numpy as np


def find_sorted(sorted_keys: np.ndarray, keys) -> tuple[np.ndarray, np.ndarray]:
    """(positions, found): where each of keys stands in sorted_keys (ascending), and whether it is there.

    A key not there gets the position it would be inserted at, clipped to the last, so that arrays aligned with
    sorted_keys can be indexed with positions before masking by found; with sorted_keys empty every position is 0
    and nothing is found."""
    sorted_keys = np.asarray(sorted_keys)
    keys = np.asarray(keys)
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, np.intp), np.zeros(keys.shape, bool)
    positions = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return positions, sorted_keys[positions] == keys


def find_rows(keys, wanted) -> tuple[np.ndarray, np.ndarray]:
    """(rows, found): the row of each of `wanted` in `keys` (unsorted, each key once), and whether it is there.

    Sorts keys once, so a lookup of many ids costs no dict of them; a key not there gets row 0 (mask by found)."""
    keys = np.asarray(keys)
    order = np.argsort(keys, kind="stable")
    at, found = find_sorted(keys[order], wanted)
    return (order[at] if len(keys) else at), found
