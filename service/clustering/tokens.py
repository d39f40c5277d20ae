"""Texts as integer token ids: the tokenizer naming reads with, and the machinery that reads many texts at once.

A token is a lowercase word (a letter, then letters, digits or hyphens, ending in a letter or digit) or a separator
(" - ", " | ", ": ", " • "), every separator standing as SEP; HTML entities are decoded first. ``tokenize`` reads one
text; ``Vocabulary.docs`` reads many joined by BOUNDARY in one regex pass and gives each token an id (SEP_ID, CUT_ID,
then words in order of first sight), so naming counts and cuts over arrays of ids instead of lists of strings.
``Trie`` matches id sequences from many places at once (naming's affixes).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from itertools import chain
from operator import itemgetter

import numpy as np

from ..sorted_keys import find_sorted

SEP = "|"  # stands for a separator (" - ", " | ", ": ", " • ") and for a cut, so no bigram spans it
CUT = "\x00"  # stands for a cut outlet suffix: where a headline ends and its description begins
BOUNDARY = "\x02"  # joins texts tokenized in one pass: a hard stop for every token pattern, entity and case rule
_TOKEN = re.compile(r"\s[-|\u2013\u2014\u2022\u00b7]+\s|:\s|•|\b[^\W\d_][\w\-]*\w")
_TOKEN_OR_BOUNDARY = re.compile(_TOKEN.pattern + "|" + BOUNDARY)
# the same pattern for text of ASCII characters only, with ASCII classes (the same tokens: on ASCII characters the
# Unicode classes differ only in \s, which also holds \x1c-\x1f there); the regex reads it ~30% faster (1M synthetic
# headlines' 587k read rows: 0.67 -> 0.48 CPU s)
_ASCII_TOKEN_OR_BOUNDARY = re.compile(_TOKEN_OR_BOUNDARY.pattern.replace(r"\s", r"[\s\x1c-\x1f]"), re.ASCII)
SEP_ID, CUT_ID, BOUNDARY_ID = 0, 1, -1
_ID_SPAN = 1 << 32  # a trie's (node, token id) pair as one int64: node * _ID_SPAN + id
# a title ending in one of these may tokenize otherwise with a space after it: ":" and " -" are separators only then
ENDS_BEFORE_SPACE = frozenset(":-|\u2013\u2014\u2022\u00b7")


def tokenize(text: str) -> list[str]:
    """Lowercase words, with every separator as SEP; HTML entities decoded ("&amp;nbsp;" too)."""
    if "&" in text:
        text = html.unescape(html.unescape(text))
    return [t if t[0].isalpha() else SEP for t in _TOKEN.findall(text.lower())]



def same_tokens(title: str, text: str) -> bool:
    """Whether a title tokenizes as its text does: the text is the title and an empty description ("title "), and the
    space added cannot make a separator of the title's end (nor of an entity there, decoded first: a title holding
    "&" is read apart)."""
    return len(text) == len(title) + 1 and text.endswith(" ") and text.startswith(title) and _ends_alike(title)


def _ends_alike(title: str) -> bool:
    """Whether a space after the title leaves its last token as it was."""
    return title[-1:] not in ENDS_BEFORE_SPACE and "&" not in title


def _token_pattern(text: str) -> re.Pattern:
    """_TOKEN_OR_BOUNDARY, or its ASCII twin where the text is ASCII only."""
    return _ASCII_TOKEN_OR_BOUNDARY if text.isascii() else _TOKEN_OR_BOUNDARY


def _lowered_joined(joined: str, n: int) -> str | None:
    """n texts joined by BOUNDARY as the tokenizer reads them: entities decoded (twice, as tokenize does), lower case
    (the boundary stops the final-sigma rule too); None where a text holds BOUNDARY itself."""
    if "&" in joined:
        joined = html.unescape(html.unescape(joined))  # no entity spans the boundary, nor decodes to it
    if joined.count(BOUNDARY) != max(n - 1, 0):
        return None
    return joined.lower()


def same_tokens_each(titles: list[str], texts: list[str], block: int = 4096) -> np.ndarray:
    """same_tokens(titles[i], texts[i]) for every i; a block whose texts are all "title " is checked in one compare."""
    same = np.fromiter(map(len, texts), np.int64, len(texts)) == np.fromiter(map(len, titles), np.int64, len(titles)) + 1
    at = np.flatnonzero(same)
    for s in range(0, len(at), block):
        part = at[s:s + block].tolist()
        t, x = [titles[i] for i in part], [texts[i] for i in part]
        if f" {BOUNDARY}".join(t) + " " != BOUNDARY.join(x):  # lengths agree row by row: equal joins, equal rows
            same[part] = [a == b + " " for a, b in zip(x, t)]
    at = np.flatnonzero(same).tolist()
    same[at] = [_ends_alike(titles[i]) for i in at]
    return same


def pick(values: Sequence[str], rows: list[int]) -> list[str]:
    """[values[r] for r in rows], the loop in C (1M synthetic headlines' 587k read rows: ~0.15 -> 0.05 s a column)."""
    return list(itemgetter(*rows)(values)) if len(rows) > 1 else [values[r] for r in rows]


class _Index(dict):
    """Token -> id, a token not seen before given the next id (a word) or SEP_ID (a separator) as it is looked up:
    the lookups stay in C (one pass over 4M tokens instead of two)."""

    def __init__(self, words: list[str]):
        super().__init__({SEP: SEP_ID, CUT: CUT_ID, BOUNDARY: BOUNDARY_ID})
        self.words = words

    def __missing__(self, token: str) -> int:
        if token[0].isalpha():
            self[token] = len(self.words)
            self.words.append(token)
        else:
            self[token] = SEP_ID
        return self[token]


class Vocabulary:
    """Tokens as ids: every separator token SEP_ID (0), CUT_ID (1), then words in order of first sight (words[id])."""

    def __init__(self):
        self.words: list[str] = [SEP, CUT]
        self.index = _Index(self.words)

    def docs(self, joined: str, n: int, each: Callable[[], list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(the token ids of n texts end to end, where each text's start: n + 1), each text read as tokenize reads
        it, in one regex pass over the texts joined by BOUNDARY; each(): the texts, read one by one where a text
        holds BOUNDARY itself. (The regex costs about as much either way; what goes is a Python call and a list per
        text, and a second pass to map tokens to ids.)"""
        raw = self._joined_ids(joined, n)
        del joined
        if raw is None:
            tokens = list(chain.from_iterable(chain(tokenize(t), (BOUNDARY,)) for t in each()))[:-1]
            raw = np.fromiter(map(self.index.__getitem__, tokens), np.int64, len(tokens))
            del tokens
        bounds = np.flatnonzero(raw == BOUNDARY_ID)
        if not n:
            return raw, np.zeros(1, np.int64)
        lengths = np.diff(np.r_[-1, bounds, len(raw)]) - 1
        return raw[raw != BOUNDARY_ID], np.r_[0, np.cumsum(lengths)].astype(np.int64)


    def _joined_ids(self, joined: str, n: int, block: int = 1 << 21) -> np.ndarray | None:
        """The ids of the tokens of n texts joined by BOUNDARY, each text's as tokenize finds them and BOUNDARY_ID
        between two texts' (None where a text holds BOUNDARY itself), found and looked up a block of texts at a
        time: one block's token strings are let go before the next block's are made (1M synthetic headlines' 587k
        read rows: holding their 4M token strings at once cost ~60k page faults; by blocks the regex pass and the
        lookups went 1.3-1.6 -> 1.2-1.4 CPU s)."""
        lowered = _lowered_joined(joined, n)
        if lowered is None:
            return None
        parts = []
        start = 0
        ascii_only = lowered.isascii()
        while start < len(lowered):
            end = lowered.find(BOUNDARY, start + block)  # a block ends with a boundary: no token spans it, and the
            end = len(lowered) if end < 0 else end + 1  # next block's first token sees it before it, as \b does
            pattern = _ASCII_TOKEN_OR_BOUNDARY if ascii_only else _token_pattern(lowered[start:end])
            tokens = pattern.findall(lowered, start, end)
            parts.append(np.fromiter(map(self.index.__getitem__, tokens), np.int64, len(tokens)))
            start = end
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class TokenLists(Sequence[list[str]]):
    """Documents' token lists (as tokenize gives them) made from ids when asked for: the affixes are learned from a sample."""

    def __init__(self, ids: np.ndarray, starts: np.ndarray, words: list[str]):
        self.ids, self.starts, self.words = ids, starts, np.array(words, dtype=object)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def __getitem__(self, i):
        return self.words[self.ids[self.starts[i]:self.starts[i + 1]]].tolist()


class Trie:
    """Token id sequences as a trie, walked from many places at once."""

    def __init__(self, sequences: list[tuple[int, ...]]):
        children: dict[tuple[int, int], int] = {}
        terminal = [False]
        for seq in sequences:
            node = 0
            for t in seq:
                node = children.setdefault((node, t), len(terminal))
                if node == len(terminal):
                    terminal.append(False)
            terminal[node] = True
        keys = np.array([n * _ID_SPAN + t for n, t in children], np.int64)
        order = np.argsort(keys)
        self.keys, self.child = keys[order], np.array(list(children.values()), np.int64)[order]
        self.terminal = np.array(terminal)
        self.depth = max(map(len, sequences), default=0)

    def longest(self, ids: np.ndarray, first: np.ndarray, step: int, limit: np.ndarray) -> np.ndarray:
        """For each start: the most tokens (0: none) read from ids[first] on, by step, at most limit, that make a sequence."""
        best = np.zeros(len(first), np.int64)
        node = np.zeros(len(first), np.int64)
        alive = np.arange(len(first))
        for d in range(1, self.depth + 1):
            alive = alive[limit[alive] >= d]
            if not len(alive) or not len(self.keys):
                break
            key = node[alive] * _ID_SPAN + ids[first[alive] + step * (d - 1)]
            at, hit = find_sorted(self.keys, key)
            alive, at = alive[hit], at[hit]
            node[alive] = self.child[at]
            best[alive[self.terminal[node[alive]]]] = d
        return best


def fill(out: np.ndarray, first: np.ndarray, count: np.ndarray, value: int) -> None:
    """out[first[i]:first[i] + count[i]] = value for every i."""
    keep = count > 0
    first, count = first[keep], count[keep]
    if len(count):
        out[np.repeat(first - np.cumsum(count) + count, count) + np.arange(int(count.sum()))] = value
