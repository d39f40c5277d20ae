"""Rows in no group take the group their nearest listed neighbours hold: the stories' rescue (two_level) and the topic
a headline in no story takes (topics) are this one rule with different quorums."""

from __future__ import annotations

import numpy as np

from ..domain import NOISE
from .graph import Neighbours


def vote_rounds(neigh: Neighbours, labels: np.ndarray, prob: np.ndarray, m: int, rounds: int, min_votes: int,
                weigh_by_voters: bool, small_groups: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities): each NOISE row takes the label at least min_votes of its m nearest listed neighbours
    hold, in synchronous rounds (each reads the previous round's labels, so the result does not depend on row order)
    until nothing changes or `rounds` are spent. Only NOISE rows are ever touched. A row's probability: the winning
    share of the m votes, times the voters' mean probability when weigh_by_voters. small_groups: a label held by
    few rows needs only a strict majority of them where that is less than min_votes (min(min_votes, size // 2 + 1)).

    After the first round only rows listing a row labelled in the last round are counted again: the others' votes
    are what they were, and they did not win then."""
    labels, prob = labels.copy(), prob.copy()
    m = min(int(m), neigh.k)
    if m <= 0 or not (labels >= 0).any():
        return labels, prob
    need = max(1, int(min_votes))
    changed = None  # rows labelled in the last round
    for _ in range(max(0, int(rounds))):
        rows = np.flatnonzero(labels < 0)
        if changed is not None:
            near = neigh.indices[rows, :m]
            rows = rows[(changed[np.maximum(near, 0)] & (near >= 0)).any(axis=1)]
        if rows.size == 0:
            break
        idx = neigh.indices[rows, :m]
        voters = np.where(idx >= 0, labels[np.maximum(idx, 0)], NOISE)
        counts = agreement_counts(voters)
        best = counts.argmax(axis=1)
        votes = counts[np.arange(len(rows)), best]
        winner = voters[np.arange(len(rows)), best]
        if small_groups:
            size = np.bincount(labels[labels >= 0])
            won = (winner >= 0) & (votes >= np.minimum(need, size[np.maximum(winner, 0)] // 2 + 1))
        else:
            won = votes >= need
        if not won.any():
            break
        rows, idx, voters, votes, winner = rows[won], idx[won], voters[won], votes[won], winner[won]
        share = votes / m
        if weigh_by_voters:
            agree = voters == winner[:, None]
            share = share * np.where(agree, prob[np.maximum(idx, 0)], 0.0).sum(axis=1) / agree.sum(axis=1)
        labels[rows] = winner  # after all reads of this round: synchronous
        prob[rows] = share.astype(np.float32)
        changed = np.zeros(len(labels), bool)
        changed[rows] = True
    return labels, prob


def agreement_counts(voters: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """For each (row, column): how many of the row's voters hold that column's label (0 for noise voters); m x m
    compares per row, m <= k (15)."""
    counts = np.zeros(voters.shape, np.int32)
    for s in range(0, len(voters), chunk):  # m x m booleans per row: chunked so a 1M-row round stays small
        v = voters[s:s + chunk]
        counts[s:s + chunk] = (v[:, :, None] == v[:, None, :]).sum(axis=2)
    counts[voters < 0] = 0
    return counts
