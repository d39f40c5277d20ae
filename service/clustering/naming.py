"""Members -> a story's name: keywords (class-based TF-IDF, BERTopic's c-TF-IDF idea), a title (its most central
headline) and distinct representative headlines.

What every story shares is learned from the data and gets no weight:

* affixes: word sequences at the same place in many headlines of many clusters -- right after a separator
  (" - Reuters", " | AP News", ": CNBC", " - The New York Times"), before one ("Opinion | ", "LIVE: ") or closing the
  text ("Continue reading...", "Read Full Article at RT.com") -- are cut out before counting, so they neither count
  nor glue into bigrams ("article rt");
* common terms: a term left in at least ``common_share`` of the clusters names none of them.

Pure: numpy/scipy over arrays and strings. Rows are grouped once (one sort), so 1M documents cost a few passes: the
texts are read as token ids (tokens.py: one regex pass over them all), the affixes cut and the keywords counted over arrays of
ids. ``name_clusters(batched=False)`` reads text by text over lists of words: the reference the fast reading equals.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, islice

import numpy as np
from scipy import sparse

from ..sorted_keys import find_sorted
from .tokens import (
    BOUNDARY,
    CUT,
    CUT_ID,
    ENDS_BEFORE_SPACE,
    SEP,
    SEP_ID,
    TokenLists,
    Trie,
    Vocabulary,
    fill,
    pick,
    same_tokens,
    same_tokens_each,
    tokenize,
)


@dataclass(frozen=True)
class Name:
    keywords: tuple[str, ...]
    representatives: tuple[int, ...]  # row indices into the inputs, most central first; distinct headlines
    title_row: int = -1  # row index of the story's title: its most central headline (representatives[0]); -1 if none


_MAX_AFFIX = 6  # words in a learned affix ("read full article at rt com")
_MIN_AFFIX_DOCS = 10  # fewer cannot tell scattered from bunched
_LEARN_SAMPLE = 20_000  # documents the affixes are learned from (spread evenly over the clusters)

# Fallback only: names of HTML entities whose "&...;" an upstream feed already stripped ("Wednesday nbsp night").
# Escaped entities ("&nbsp;") are decoded with html.unescape, and a bare name that is common across clusters is caught
# by the learned rule; but in a small corpus a stray "nbsp" sits in too few clusters to be learned, and these names
# are no word of any language, so dropping them costs nothing.
_ENTITY_NAMES = frozenset({"nbsp", "amp", "quot", "apos", "hellip", "mdash", "ndash", "lsquo", "rsquo", "ldquo", "rdquo"})


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """scikit-learn's English list (importing it costs ~0.7 s once per process: warmup.py pays it at start)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@dataclass(frozen=True)
class Members:
    """The rows each cluster is named from: its most central max_keyword_docs rows, most central first, clusters in
    label order (cluster i is labels[i]), end to end: cluster[j] of rows[j]; cluster i's at starts[i]:starts[i + 1]."""
    labels: np.ndarray
    rows: np.ndarray
    cluster: np.ndarray
    starts: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.labels)


def central_members(labels: np.ndarray, vectors: np.ndarray, max_keyword_docs: int) -> Members:
    """Every cluster's (label >= 0) rows by closeness to its mean vector, the first max_keyword_docs kept: vectors
    only, no text (grouped once: one sort)."""
    labels = np.asarray(labels)
    vectors = np.asarray(vectors)
    clustered = np.flatnonzero(labels >= 0)
    if len(clustered) == 0:
        return Members(np.zeros(0, labels.dtype), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(1, np.int64))
    cluster_values, cl = _codes(labels[clustered])
    n_clusters = len(cluster_values)
    # sorted by cluster as 16-bit codes where they fit: numpy sorts those stably by radix (900k rows: 0.07 -> 0.008 s;
    # with the closeness sort, 0.17 s of np.lexsort -> 0.11)
    codes = cl.astype(np.uint16) if n_clusters <= 1 << 16 else cl
    by_cluster = np.argsort(codes, kind="stable")  # each cluster's rows together, in row order
    grouped, cl_grouped, codes = clustered[by_cluster], cl[by_cluster], codes[by_cluster]
    closeness = _closeness(vectors, grouped, np.searchsorted(cl_grouped, np.arange(n_clusters + 1)))
    order = np.argsort(-closeness, kind="stable")  # then by cluster, stably: np.lexsort((-closeness, cl_grouped))
    order = order[np.argsort(codes[order], kind="stable")]  # (ties in row order, as grouped holds them)
    rows_sorted, cl_sorted = grouped[order], cl_grouped[order]
    starts = np.searchsorted(cl_sorted, np.arange(n_clusters + 1))
    read = (np.arange(len(order)) - starts[cl_sorted]) < max_keyword_docs
    doc_rows, doc_cl = rows_sorted[read], cl_sorted[read]
    return Members(cluster_values, doc_rows, doc_cl, np.searchsorted(doc_cl, np.arange(n_clusters + 1)))


@dataclass(frozen=True)
class NamingOptions:
    """How clusters are named (name_clusters' parameters of these names say what each does), as one value: the
    defaults are written once, here, and the public functions hand the options on whole."""
    n_keywords: int = 6
    n_representatives: int = 3
    common_share: float = 0.5
    duplicate_cosine: float = 0.95
    max_keyword_docs: int = 100
    min_clusters: int = 3
    batched: bool = True


_DEFAULTS = NamingOptions()


def name_clusters(texts: Sequence[str], labels: np.ndarray, vectors: np.ndarray, n_keywords: int = _DEFAULTS.n_keywords,
                  n_representatives: int = _DEFAULTS.n_representatives, *, titles: Sequence[str] | None = None,
                  descriptions: Sequence[str] | None = None, common_share: float = _DEFAULTS.common_share,
                  duplicate_cosine: float = _DEFAULTS.duplicate_cosine, max_keyword_docs: int = _DEFAULTS.max_keyword_docs,
                  min_clusters: int = _DEFAULTS.min_clusters, batched: bool = _DEFAULTS.batched,
                  members: Members | None = None) -> dict[int, Name]:
    """Name every cluster (label >= 0) by keywords, a title row and up to ``n_representatives`` distinct headlines.

    Keywords weigh a term by its document frequency in the cluster against its spread over all clusters (so "says"
    sinks and each story's own words rise), after the learned boilerplate is removed (see the module docstring).
    ``titles``, when given (the headline alone of each row), makes the duplicate check compare headlines rather than
    "title description" texts. Two rows are the same headline when their words match once learned affixes (or a short
    trailing " - Outlet") are cut, or their vectors' cosine exceeds ``duplicate_cosine``; each card shows one of them.
    Only each cluster's ``max_keyword_docs`` most central rows are read for keywords and representatives.
    Learning needs ``min_clusters`` clusters sharing a term or affix; below that nothing is treated as boilerplate.
    ``texts`` and ``titles`` are only indexed, by row: a caller may make each one when it is asked for.
    ``descriptions``, with ``titles``, says each row's text is f"{title} {description}": the texts are then built from
    the two without reading ``texts`` row by row (they must agree).
    ``batched=False`` reads every cluster row by row (the reference the batched shortcut must equal: tests, bench/names.py).
    ``members``: central_members(labels, vectors, max_keyword_docs), where the caller computed it already (it needs
    no text: the rebuild reads the texts meanwhile).
    """
    options = NamingOptions(n_keywords, n_representatives, common_share, duplicate_cosine, max_keyword_docs, min_clusters, batched)
    return _name_clusters(texts, labels, vectors, options, titles=titles, descriptions=descriptions, members=members)[0]


def name_stories_and_topics(texts: Sequence[str], labels: np.ndarray, vectors: np.ndarray, story_topic: np.ndarray, *,
                            titles: Sequence[str], descriptions: Sequence[str] | None = None,
                            max_keyword_docs: int = _DEFAULTS.max_keyword_docs,
                            members: Members | None = None) -> tuple[dict[int, Name], dict[int, Name]]:
    """name_clusters of the stories (labels), then name_topics of their topics (story_topic: each story label's
    topic), as the two called one after the other name them; the topics' headlines are read from the token ids the
    stories' naming made of them (tokenizing their titles again cost 0.27 of the stage's CPU s at 1M synthetic headlines)."""
    stories, headlines = _name_clusters(texts, labels, vectors, NamingOptions(max_keyword_docs=max_keyword_docs), titles=titles,
                                        descriptions=descriptions, members=members)
    labels = np.asarray(labels)
    sizes = np.bincount(labels[labels >= 0], minlength=len(story_topic))
    return stories, name_topics(stories, story_topic, sizes, titles=titles, headlines=headlines)


def _name_clusters(texts: Sequence[str], labels: np.ndarray, vectors: np.ndarray, options: NamingOptions, *,
                   titles: Sequence[str] | None, descriptions: Sequence[str] | None,
                   members: Members | None) -> tuple[dict[int, Name], HeadlineTokens | None]:
    """name_clusters, and the titles of the rows it read as token ids (None: not at hand)."""
    vectors = np.asarray(vectors)  # a memory map's rows read as plain arrays (np.memmap's own indexing costs ~10x more)
    if members is None:
        members = central_members(labels, vectors, options.max_keyword_docs)
    elif len(members.rows) and (members.rows.max() >= len(labels) or
                                not np.array_equal(np.asarray(labels)[members.rows], members.labels[members.cluster])):
        raise ValueError("name_clusters: members= was found for other labels (each member row must hold its cluster's label)")
    if members.n_clusters == 0:
        return {}, None
    n_clusters, doc_rows, doc_cl, doc_starts = members.n_clusters, members.rows, members.cluster, members.starts

    headlines = None
    if options.batched:
        keywords, keys_of, headlines = _keywords_and_keys(texts, titles, descriptions, doc_rows, doc_cl, n_clusters,
                                                          options.n_keywords, options.common_share, options.min_clusters)
    else:
        keywords, keys_of = _keywords_and_keys_by_row(texts, titles, doc_rows, doc_cl, n_clusters, options.n_keywords,
                                                      options.common_share, options.min_clusters)
    picked = _representatives(vectors, doc_rows, doc_starts, keys_of, options.n_representatives, options.duplicate_cosine,
                              batched=options.batched)
    cluster_values = members.labels
    return ({int(cluster_values[c]): Name(keywords=keywords[c], representatives=tuple(picked[c]), title_row=picked[c][0] if picked[c] else -1)
             for c in range(n_clusters)}, headlines)


def _keywords_and_keys_by_row(texts: Sequence[str], titles: Sequence[str] | None, doc_rows: np.ndarray, doc_cl: np.ndarray,
                              n_clusters: int, n_keywords: int, common_share: float, min_clusters: int):
    """(keywords of each cluster, keys_of) read text by text over lists of words: the reference the id-based reading
    (_keywords_and_keys) must equal."""
    tokens = [tokenize(texts[r]) for r in doc_rows.tolist()]
    affixes = _learn_affixes(tokens, doc_cl, n_clusters, min_clusters)
    firsts = _first_words(affixes)
    stripped = [_strip(t, affixes, firsts) for t in tokens] if affixes else tokens
    keywords = _keywords(stripped, doc_cl, n_clusters, n_keywords, common_share, min_clusters)
    rows = doc_rows.tolist()
    keys_at: dict[int, set[str]] = {}

    def keys_of(j: int) -> set[str]:
        """A row's headline keys, from its title's own tokens where its text holds more than the title."""
        keys = keys_at.get(j)
        if keys is None:
            r = rows[j]
            if titles is not None and not same_tokens(titles[r], texts[r]):
                keys = _headline_keys(_strip(tokenize(titles[r]), affixes, firsts))
            else:
                keys = _headline_keys(stripped[j])
            keys_at[j] = keys
        return keys

    return keywords, keys_of


def _keywords_and_keys(texts: Sequence[str], titles: Sequence[str] | None, descriptions: Sequence[str] | None, doc_rows: np.ndarray,
                       doc_cl: np.ndarray, n_clusters: int, n_keywords: int, common_share: float, min_clusters: int):
    """(keywords of each cluster, keys_of, the rows' titles as HeadlineTokens: None without titles) as
    _keywords_and_keys_by_row gives the first two, over token ids: every text
    tokenized in one pass (Vocabulary.docs), the affixes cut by walking tries over all documents at once, the
    headline keys as ranges of word ids. (bench/names.py --n 1000000, 44k stories: the per-text Python of the
    text-by-text reading was about 4 of the stage's 10 CPU s; with this the whole stage went 7.2-7.7 -> 5.9-6.7 user
    CPU s, the tokenizer's one pass about 1 s of it.)"""
    rows = doc_rows.tolist()
    vocab = Vocabulary()
    if titles is not None and descriptions is not None:
        title_list, description_list = pick(titles, rows), pick(descriptions, rows)
        parts = [" "] * (4 * len(rows))  # title, " ", description, BOUNDARY: no string made per row
        parts[0::4], parts[2::4], parts[3::4] = title_list, description_list, [BOUNDARY] * len(rows)
        del parts[-1:]  # no BOUNDARY after the last text
        joined = "".join(parts)
        del parts
        own = np.flatnonzero(np.fromiter(map(len, description_list), np.int64, len(rows)) > 0)  # not same_tokens: "title " only
        own = np.union1d(own, _ending_before_space(joined, title_list))
        if "&" in joined:  # an entity decoded to a separator may end a title too (tokens._ends_alike)
            own = np.union1d(own, np.flatnonzero(["&" in t for t in title_list]))
        del description_list
        ids, starts = vocab.docs(joined, len(rows), lambda: [texts[r] for r in rows])
        del joined
    else:
        text_list = pick(texts, rows)
        ids, starts = vocab.docs(BOUNDARY.join(text_list), len(rows), lambda: text_list)
        if titles is not None:
            title_list = pick(titles, rows)
            own = np.flatnonzero(~same_tokens_each(title_list, text_list))  # rows keyed by their title's own tokens
        del text_list
    affixes = _learn_affixes(TokenLists(ids, starts, vocab.words), doc_cl, n_clusters, min_clusters)
    tries = _AffixTries(affixes, vocab)
    stripped = tries.strip(ids, starts)

    lengths = np.diff(starts)
    present = np.flatnonzero(np.bincount(stripped, minlength=len(vocab.words)))
    present = present[present > CUT_ID]
    names = [vocab.words[i] for i in present.tolist()]
    by_name = sorted(range(len(names)), key=names.__getitem__)
    rank = np.zeros(len(vocab.words), np.int64)
    rank[CUT_ID] = 1
    rank[present[by_name]] = np.arange(2, len(by_name) + 2)
    doc_of = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    keywords = _keywords_of_ids(rank[stripped], doc_of, [SEP, CUT, *(names[i] for i in by_name)], doc_cl, n_clusters,
                                n_keywords, common_share, min_clusters)
    del doc_of

    first, end, second, words = _headline_key_ranges(stripped, starts)
    headlines = None
    if titles is not None:  # each row's title as token ids: its text's where it tokenizes as its title, else its own
        title_begin, title_end = starts[:-1].copy(), starts[1:].copy()
    if titles is not None and len(own):
        own_titles = [title_list[j] for j in own.tolist()]
        t_ids, t_starts = vocab.docs(BOUNDARY.join(own_titles), len(own_titles), lambda: own_titles)
        t_first, t_end, t_second, t_words = _headline_key_ranges(tries.strip(t_ids, t_starts), t_starts)
        shift = len(words)
        first[own], end[own] = t_first + shift, t_end + shift
        second[own] = np.where(t_second >= 0, t_second + shift, -1)
        words = np.concatenate([words, t_words])
        title_begin[own], title_end[own] = t_starts[:-1] + len(ids), t_starts[1:] + len(ids)
        ids = np.concatenate([ids, t_ids])
    if titles is not None:
        headlines = HeadlineTokens(doc_rows, ids, title_begin, title_end, vocab)
    del ids
    blob = words.astype(np.int32).tobytes()
    first_at, end_at, second_at = (first * 4).tolist(), (end * 4).tolist(), (second * 4).tolist()

    def keys_of(j: int) -> set[bytes]:
        """A row's headline keys: its key words' ids as bytes (equal exactly when the words are)."""
        a, b = first_at[j], second_at[j]
        return {blob[a:end_at[j]], blob[a:b]} if b >= 0 else {blob[a:end_at[j]]}

    return keywords, keys_of, headlines


_END_BEFORE_EMPTY = re.compile(f"[{re.escape(''.join(sorted(ENDS_BEFORE_SPACE)))}] (?:{BOUNDARY}|\\Z)")


def _ending_before_space(joined: str, titles: list[str]) -> np.ndarray:
    """Rows whose title ends in one of ENDS_BEFORE_SPACE, among those joined as f"{title} {description}" by BOUNDARY,
    and any other whose text ends in such a character and a space (a description: such a row is read apart anyway).
    A row with no description ends so in the joined texts: one regex pass finds them (a Python test of each title cost
    0.1 s at 1M synthetic headlines' 587k read rows); where a text holds BOUNDARY itself, each title is tested."""
    if joined.count(BOUNDARY) != max(len(titles) - 1, 0):
        return np.flatnonzero([t[-1:] in ENDS_BEFORE_SPACE for t in titles])
    rows, seen, at = [], 0, 0
    for match in _END_BEFORE_EMPTY.finditer(joined):
        seen += joined.count(BOUNDARY, at, match.start())
        at = match.start()
        rows.append(seen)
    return np.array(rows, np.int64)


class _AffixTries:
    """The learned affixes as tries over token ids: _strip for all documents at once."""

    def __init__(self, affixes: frozenset, vocab: Vocabulary):
        heads, afters, tails = [], [], []
        for a in affixes:
            words = a[1:] if a[0] in ("^", SEP) else a[:-1]
            if any(w not in vocab.index for w in words):
                continue  # in no text
            ids = tuple(vocab.index[w] for w in words)
            (heads if a[0] == "^" else afters if a[0] == SEP else tails).append(ids if a[-1] != "$" else ids[::-1])
        self.learned = bool(affixes)
        self.heads, self.afters, self.tails = Trie(heads), Trie(afters), Trie(tails)

    def strip(self, ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """_strip of each document (ids[starts[i]:starts[i + 1]]), the documents end to end."""
        if not self.learned or not len(ids):
            return ids
        out = ids.copy()
        begins, ends = starts[:-1], starts[1:]
        lengths = ends - begins
        doc_of = np.repeat(np.arange(len(lengths)), lengths)
        docs = np.flatnonzero(lengths > 2)  # a closing affix: 2 or more words, fewer than the text's
        k = self.tails.longest(ids, ends[docs] - 1, -1, lengths[docs] - 1)
        fill(out, ends[docs] - k, k, SEP_ID)
        seps = np.flatnonzero(ids == SEP_ID)
        if not len(seps):
            return out
        docs, at = np.unique(doc_of[seps], return_index=True)
        first = seps[at] - begins[docs]  # each document's first separator
        docs, first = docs[(first > 0) & (first <= _MAX_AFFIX)], first[(first > 0) & (first <= _MAX_AFFIX)]
        whole = self.heads.longest(ids, begins[docs], 1, first) == first
        fill(out, begins[docs[whole]], first[whole], SEP_ID)
        seps = seps[seps + 1 < ends[doc_of[seps]]]
        k = self.afters.longest(ids, seps + 1, 1, ends[doc_of[seps]] - seps - 1)
        fill(out, seps + 1, k, CUT_ID)
        return out


def _headline_key_ranges(ids: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """_headline_keys of each stripped document as ranges of its words (ids other than SEP_ID and CUT_ID, end to
    end: the fourth array): (first, end) the words' key, (first, second) the key before a short last segment (second
    -1: none)."""
    n = len(starts) - 1
    begins, ends = starts[:-1], starts[1:]
    doc_of = np.repeat(np.arange(n), ends - begins)
    is_word = ids > CUT_ID
    words_before = np.r_[0, np.cumsum(is_word)]
    end = ends.copy()
    cuts = np.flatnonzero(ids == CUT_ID)
    if len(cuts):
        docs, at = np.unique(doc_of[cuts], return_index=True)
        first_cut = cuts[at]
        long = words_before[first_cut] - words_before[begins[docs]] >= 3  # a headline of 3+ words before an outlet cut
        end[docs[long]] = first_cut[long]
    seps = np.flatnonzero(ids == SEP_ID)
    seps = seps[seps < end[doc_of[seps]]]
    second = np.full(n, -1, np.int64)
    if len(seps):
        d = doc_of[seps]
        last = np.r_[d[1:] != d[:-1], True]
        seps, d = seps[last], d[last]
        short = (end[d] - 1 - seps <= 4) & (words_before[seps] - words_before[begins[d]] >= 3)
        second[d[short]] = words_before[seps[short]]
    return words_before[begins], words_before[end], second, ids[is_word]


def _representatives(vectors: np.ndarray, doc_rows: np.ndarray, doc_starts: np.ndarray, keys_of: Callable[[int], set],
                     n_representatives: int, duplicate_cosine: float, chunk: int = 1024, batched: bool = True) -> list[list[int]]:
    """Each cluster's representatives (rows), read in order (most central first): a row whose headline keys or vector
    (cosine > duplicate_cosine) repeat one already picked is skipped.

    The vectors' cosines come from one batched product per chunk of clusters, among the rows each cluster would pick
    if no two vectors were alike: its first n_representatives rows whose keys are new (a row sharing keys is skipped
    before its vector is read). Where two of those are alike, the cluster is read again with the cosines among all
    its rows (_cluster_alike), so the picks are always those of a row-by-row reading. keys_of(j): the headline keys of
    doc_rows[j] (two rows are one headline when their keys meet).
    (With the stage's other changes, the name stage at 1M synthetic headlines, 44k stories: 15.2 -> 10.0 CPU s,
    bench/names.py.)"""
    n_clusters = len(doc_starts) - 1
    k = n_representatives
    if k <= 0:
        return [[] for _ in range(n_clusters)]
    rows = doc_rows.tolist()
    starts = doc_starts.tolist()

    def unit(x: np.ndarray) -> np.ndarray:
        """Rows scaled to length 1, in place where x is float64 already (x: a fresh gather)."""
        x = x.astype(np.float64, copy=False)
        x /= np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
        return x

    out: list[list[int]] = []
    for c0 in range(0, n_clusters, chunk):
        c1 = min(n_clusters, c0 + chunk)
        cand = np.full((c1 - c0, k), -1, np.int64)  # the rows (positions into doc_rows) whose vectors are batched
        for c in range(c0, c1):
            chosen, held = 0, set()
            for j in range(starts[c], starts[c + 1]):
                keys = keys_of(j)
                if keys & held:
                    continue
                cand[c - c0, chosen] = j
                held |= keys
                chosen += 1
                if chosen == k:
                    break
        units = unit(vectors[doc_rows[np.maximum(cand, 0)]])  # (clusters, k, dim)
        gram = np.matmul(units, units.transpose(0, 2, 1))
        # no two of a cluster's batched rows alike: a reading picks exactly them (each one's keys are new, and so is
        # its vector, and every row between them shares keys with one of them); the others are read again
        alike = ((gram > duplicate_cosine) & (cand[:, :, None] >= 0) & (cand[:, None, :] >= 0)
                 & np.triu(np.ones((k, k), bool), 1)).any(axis=(1, 2)).tolist() if batched else [True] * (c1 - c0)
        slots = cand.tolist()
        reread = [c for c in range(c0, c1) if alike[c - c0]]
        alike_rows = _cluster_alike(vectors, doc_rows, doc_starts, reread, unit, duplicate_cosine)
        for c in range(c0, c1):
            if not alike[c - c0]:
                out.append([rows[j] for j in slots[c - c0] if j >= 0])
                continue
            g = alike_rows[c]  # which of all the rows the cluster reads are alike (cosine > duplicate_cosine)
            picked: list[int] = []
            picked_at: list[int] = []  # their places in the cluster's order
            seen: set[str] = set()
            for i, j in enumerate(range(starts[c], starts[c + 1])):
                if len(picked) >= n_representatives:
                    break
                keys = keys_of(j)
                if keys & seen or any(g[i][p] for p in picked_at):
                    continue
                picked.append(rows[j])
                picked_at.append(i)
                seen |= keys
            out.append(picked)
    return out


def _cluster_alike(vectors: np.ndarray, doc_rows: np.ndarray, doc_starts: np.ndarray, clusters: list[int], unit, duplicate_cosine: float,
                   max_rows: int = 8_192) -> dict[int, list[list[bool]]]:
    """Which of all the rows each of these clusters reads (doc_rows[doc_starts[c]:doc_starts[c + 1]]) are alike
    (cosine > duplicate_cosine), by cluster: batched products over groups of clusters holding at most max_rows rows
    padded, compared in numpy (the cosines as Python floats cost 1M synthetic headlines' 3.4k re-read stories ~0.1 s)."""
    out: dict[int, list[list[bool]]] = {}
    i = 0
    while i < len(clusters):
        width = 0
        group: list[int] = []
        while i < len(clusters):
            w = max(width, int(doc_starts[clusters[i] + 1] - doc_starts[clusters[i]]))
            if group and (len(group) + 1) * w > max_rows:
                break
            width = w
            group.append(clusters[i])
            i += 1
        first = doc_starts[group][:, None] + np.arange(width)[None, :]
        first = np.where(first < doc_starts[np.asarray(group) + 1][:, None], first, doc_starts[group][:, None])
        units = unit(vectors[doc_rows[first]])
        out.update(zip(group, (np.matmul(units, units.transpose(0, 2, 1)) > duplicate_cosine).tolist()))
    return out


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True) (the inverse flat); for labels (integers from 0, not far above their
    count) by a table instead of a sort (1M synthetic headlines' 900k clustered rows: 0.22 -> 0.005 s)."""
    if values.dtype.kind in "iu" and len(values) and values.min() >= 0 and int(values.max()) < 4 * len(values) + 1024:
        present = np.zeros(int(values.max()) + 1, bool)
        present[values] = True
        return np.flatnonzero(present).astype(values.dtype), (np.cumsum(present) - 1)[values]
    unique, inverse = np.unique(values, return_inverse=True)
    return unique, inverse.ravel()


def _closeness(vectors: np.ndarray, rows: np.ndarray, starts: np.ndarray, chunk: int = 8_192) -> np.ndarray:
    """Each row's dot product with its cluster's mean vector; rows grouped by cluster (cluster i's at
    starts[i]:starts[i + 1], in row order). Clusters are read a piece of at most chunk rows at a time, gathered once
    into one buffer used again: the piece's sums (a sparse product: each sum added up row by row, in row order), then
    its dot products from the same rows; a cluster of more rows than chunk is summed piece by piece in the same order,
    then read again. (The means from one sparse product over the scattered rows, then a second gather of them: 1M
    synthetic headlines 0.72 -> 0.38 CPU s; fresh gathers and float64 temporaries had cost 0.2-1.4 s of page faults.)"""
    dtype = vectors.dtype if vectors.dtype in (np.float32, np.float64) else np.float64
    sizes = np.diff(starts)
    out = np.empty(len(rows), np.float64)
    buffer = np.empty((min(chunk, len(rows)), vectors.shape[1]), dtype)
    centre_of_row = np.empty_like(buffer)  # each row's centre, for the dot products

    def gather(a: int, b: int) -> np.ndarray:
        piece = buffer[:b - a]
        if vectors.dtype == dtype:
            np.take(vectors, rows[a:b], axis=0, out=piece, mode="clip")  # "raise" buffers the out
        else:
            piece[:] = vectors[rows[a:b]]
        return piece

    def mean(total: np.ndarray, size) -> np.ndarray:
        return (np.asarray(total, np.float64) / size).astype(dtype)

    bounds = starts.tolist()
    c, n_clusters = 0, len(starts) - 1
    while c < n_clusters:
        a = bounds[c]
        c2 = int(np.searchsorted(starts, a + chunk, side="right")) - 1  # clusters c..c2-1 fit in one piece
        if c2 > c:
            b = bounds[c2]
            piece = gather(a, b)
            member = sparse.csr_matrix((np.ones(b - a, np.float32), np.arange(b - a), starts[c:c2 + 1] - a), shape=(c2 - c, b - a))
            centres = mean(member @ piece, sizes[c:c2, None])
            at = np.repeat(np.arange(c2 - c), sizes[c:c2])
            out[a:b] = np.einsum("ij,ij->i", piece, np.take(centres, at, axis=0, out=centre_of_row[:b - a], mode="clip"))
            c = c2
            continue
        b = bounds[c + 1]
        total = None
        for s in range(a, b, chunk):  # np.add.reduce over axis 0 adds row by row, as the product does
            piece = gather(s, min(b, s + chunk))
            total = np.add.reduce(piece if total is None else np.concatenate([total[None], piece]), axis=0)
        centre = mean(total, b - a)
        for s in range(a, b, chunk):
            piece = gather(s, min(b, s + chunk))
            centre_at = centre_of_row[:len(piece)]
            centre_at[:] = centre  # the same operands as a piece of small clusters gives einsum
            out[s:s + len(piece)] = np.einsum("ij,ij->i", piece, centre_at)
        c += 1
    return out


def _affix_candidates(toks: list[str]):
    """Word sequences at a fixed place: ('^', head...) before the first separator, ('|', ...) after a separator,
    (..., '$') closing the text."""
    n = len(toks)
    for i, t in enumerate(toks):
        if t != SEP:
            continue
        if 0 < i <= _MAX_AFFIX and SEP not in toks[:i]:
            yield ("^", *toks[:i])
        for k in range(1, _MAX_AFFIX + 1):
            if i + k >= n or toks[i + k] == SEP:
                break
            yield (SEP, *toks[i + 1:i + 1 + k])
    for k in range(2, min(_MAX_AFFIX, n - 1) + 1):
        if toks[-k] == SEP:
            break
        yield (*toks[-k:], "$")


def _learn_affixes(tokens: list[list[str]], doc_cl: np.ndarray, n_clusters: int, min_clusters: int) -> frozenset[tuple[str, ...]]:
    """Affixes found in at least _MIN_AFFIX_DOCS documents of at least min_clusters clusters, and in at least 40% of
    the clusters a random scatter of as many documents would reach: boilerplate lands wherever its outlet does, a
    story's words bunch in its clusters. (Fewer documents cannot tell the two apart.)"""
    if n_clusters < min_clusters:
        return frozenset()
    take = _distinct(np.linspace(0, len(tokens) - 1, min(len(tokens), _LEARN_SAMPLE)).astype(np.int64))
    n_docs: Counter = Counter()  # documents with the affix
    reach: Counter = Counter()  # clusters with the affix
    in_cluster: set = set()
    for j, i in enumerate(take):  # docs come grouped by cluster
        found = set(_affix_candidates(tokens[i]))
        n_docs.update(found)
        in_cluster |= found
        if j + 1 == len(take) or doc_cl[take[j + 1]] != doc_cl[i]:
            reach.update(in_cluster)
            in_cluster = set()
    stop = stop_words() | {"^", SEP, "$"}
    cands = [c for c, nn in n_docs.items() if nn >= _MIN_AFFIX_DOCS and reach[c] >= min_clusters
             and not stop.issuperset(c)]  # "- the" is no outlet
    if not cands:
        return frozenset()
    sizes = np.bincount(doc_cl[take], minlength=n_clusters).astype(np.float64)
    sizes = sizes[sizes > 0]
    n = np.array([n_docs[c] for c in cands], np.int64)
    reached = np.array([reach[c] for c in cands], np.float64)
    values, inverse = np.unique(n, return_inverse=True)
    expected = (1.0 - (1.0 - values[:, None] / sizes.sum()) ** sizes[None, :]).sum(axis=1)[inverse.ravel()]
    return frozenset(c for c, k, e in zip(cands, reached, expected) if k >= 0.4 * e)


def _first_words(affixes: frozenset) -> tuple[frozenset, dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The word each kind of affix starts (heads, after a separator) or ends (tails) with: a quick reject in _strip;
    for afters and tails, with the lengths (in words, longest first) of the affixes holding that word there, so _strip
    tries only lengths that can match (the same cuts; 58k synthetic documents, fastest of 12: 0.085 -> 0.055 s)."""
    afters: dict[str, set[int]] = {}
    tails: dict[str, set[int]] = {}
    for a in affixes:
        if a[0] == SEP:
            afters.setdefault(a[1], set()).add(len(a) - 1)
        elif a[-1] == "$":
            tails.setdefault(a[-2], set()).add(len(a) - 1)
    return (frozenset(a[1] for a in affixes if a[0] == "^"), {w: tuple(sorted(ks, reverse=True)) for w, ks in afters.items()},
            {w: tuple(sorted(ks, reverse=True)) for w, ks in tails.items()})


def _strip(toks: list[str], affixes: frozenset, firsts: tuple[frozenset, dict, dict]) -> list[str]:
    """Cut learned affixes (longest first), leaving SEP in their place (CUT where an outlet suffix was); returns
    the input itself when nothing matches."""
    if not affixes or not toks:
        return toks
    heads, afters, tails = firsts
    out = toks
    n = len(toks)
    for k in tails.get(toks[-1], ()):  # 2 <= k <= _MAX_AFFIX by construction
        if k < n and (*toks[-k:], "$") in affixes:
            out = list(toks)
            out[n - k:] = [SEP] * k
            break
    if SEP not in toks:
        return out
    if toks[0] in heads:
        first = toks.index(SEP)
        if 0 < first <= _MAX_AFFIX and ("^", *toks[:first]) in affixes:
            out = list(out) if out is toks else out
            out[:first] = [SEP] * first
    i = -1
    while True:
        try:
            i = toks.index(SEP, i + 1)
        except ValueError:
            break
        if i + 1 >= n or toks[i + 1] not in afters:
            continue
        for k in afters[toks[i + 1]]:  # k <= _MAX_AFFIX by construction
            if k > n - 1 - i:
                continue
            seg = toks[i + 1:i + 1 + k]
            if SEP not in seg and (SEP, *seg) in affixes:
                out = list(out) if out is toks else out
                out[i + 1:i + 1 + k] = [CUT] * k
                break
    return out


def _distinct(x: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy's hashing path for plain np.unique is ~20x slower on millions of int64)."""
    x = np.sort(x)
    return x[np.r_[True, x[1:] != x[:-1]]] if len(x) else x


def _headline_keys(toks: list[str]) -> set[str]:
    """Keys under which a headline counts once: its words up to where a learned outlet affix was cut (the rest is
    a description); and, when the text ends in a short segment after a separator (" - Reuters", " | AP News"), the
    words before it."""
    if SEP not in toks and CUT not in toks:
        return {" ".join(toks)}
    if CUT in toks and sum(t != SEP for t in toks[:toks.index(CUT)]) >= 3:
        toks = toks[:toks.index(CUT)]
    words = [t for t in toks if t not in (SEP, CUT)]
    keys = {" ".join(words)}
    if SEP in toks:
        last = len(toks) - 1 - toks[::-1].index(SEP)
        head = [t for t in toks[:last] if t not in (SEP, CUT)]
        if len(toks) - 1 - last <= 4 and len(head) >= 3:
            keys.add(" ".join(head))
    return keys


def _keywords(stripped: list[list[str]], doc_cl: np.ndarray, n_clusters: int, n_keywords: int, common_share: float,
              min_clusters: int) -> list[tuple[str, ...]]:
    """c-TF-IDF over unigrams and bigrams (adjacent non-stop words), each counted once per document."""
    flat = list(chain.from_iterable(stripped))
    words = [SEP, CUT, *sorted(set(flat) - {SEP, CUT})]
    vocab = {w: i for i, w in enumerate(words)}
    ids = np.fromiter(map(vocab.__getitem__, flat), np.int64, len(flat))
    del flat
    doc_of = np.repeat(np.arange(len(stripped), dtype=np.int64), [len(t) for t in stripped])
    return _keywords_of_ids(ids, doc_of, words, doc_cl, n_clusters, n_keywords, common_share, min_clusters)


def _keywords_of_ids(ids: np.ndarray, doc_of: np.ndarray, words: list[str], doc_cl: np.ndarray, n_clusters: int, n_keywords: int,
                     common_share: float, min_clusters: int) -> list[tuple[str, ...]]:
    """_keywords over the documents' tokens as ids into words (SEP, CUT, then the other tokens sorted: ties go by
    that order) and the document of each token (ascending)."""
    empty: list[tuple[str, ...]] = [()] * n_clusters
    if len(words) <= 2:
        return empty
    stop = stop_words()
    v = len(words)
    skip = np.array([w in stop or len(w) < 2 or w in (SEP, CUT) for w in words])
    ok = ~skip[ids]
    stop_id = np.array([w in stop for w in words])
    keep = ~stop_id[ids]  # bigrams skip stop words ("house of cards" -> "house cards") but never span a cut
    ids, doc_of, ok = ids[keep], doc_of[keep], ok[keep]

    # documents come grouped by cluster (as name_clusters reads them): then a (cluster, term, document) triple is one
    # int64 whose sort gives each cluster's terms in order with their document counts, and the matrix is built as it
    # is stored (1M synthetic headlines: the two matrices 0.45 -> 0.2 s against pairs sorted, then summed by scipy)
    grouped = bool(np.all(doc_cl[1:] >= doc_cl[:-1]))
    first_doc = np.searchsorted(doc_cl, np.arange(n_clusters)) if grouped else None
    depth = int(np.bincount(doc_cl).max()) if grouped and len(doc_cl) else 1

    def per_cluster(doc: np.ndarray, term: np.ndarray, n_terms: int) -> sparse.csr_matrix:
        """Documents holding each term, by cluster: a (clusters, n_terms) matrix of counts."""
        if not grouped or n_clusters * n_terms * depth >= 1 << 62:
            pairs = _distinct(doc * n_terms + term)
            d, t = pairs // n_terms, pairs % n_terms
            return sparse.csr_matrix((np.ones(len(d)), (doc_cl[d], t)), shape=(n_clusters, n_terms))
        cl = doc_cl[doc]
        cells = _distinct((cl * n_terms + term) * depth + (doc - first_doc[cl])) // depth
        at = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]]) if len(cells) else np.zeros(0, np.int64)
        counts = np.diff(np.r_[at, len(cells)]).astype(np.float64)
        cells = cells[at]
        return sparse.csr_matrix((counts, cells % n_terms, np.searchsorted(cells // n_terms, np.arange(n_clusters + 1))),
                                 shape=(n_clusters, n_terms))

    uni = per_cluster(doc_of[ok], ids[ok], v)
    both = ok[:-1] & ok[1:] & (doc_of[:-1] == doc_of[1:])
    pair_codes = ids[:-1][both] * v + ids[1:][both]
    codes = _distinct(pair_codes)
    bi = per_cluster(doc_of[:-1][both], np.searchsorted(codes, pair_codes), len(codes))
    del pair_codes
    counts = sparse.hstack([uni, bi], format="csr")
    cluster_df = np.bincount(counts.indices, minlength=counts.shape[1])

    common = np.zeros(counts.shape[1], bool)
    if n_clusters >= min_clusters:
        common = (cluster_df >= min_clusters) & (cluster_df >= common_share * n_clusters)
    common[:v] |= np.array([w in _ENTITY_NAMES for w in words])
    common[v:] |= np.asarray(bi.sum(axis=0)).ravel() < 2  # a bigram seen once says nothing
    common[:2] = True

    total = np.asarray(counts.sum(axis=0)).ravel()
    avg = total.sum() / n_clusters
    idf = np.where(common, 0.0, np.log1p(avg / np.maximum(total, 1)))
    row_sum = np.maximum(np.asarray(counts.sum(axis=1)).ravel(), 1)
    # diag(1 / row_sum) @ counts @ diag(idf), entry by entry in the products' order of operations
    weights = counts
    weights.data = (1.0 / row_sum)[np.repeat(np.arange(n_clusters), np.diff(weights.indptr))] * weights.data * idf[weights.indices]
    weights.eliminate_zeros()

    def term(i: int) -> str:
        if i < v:
            return words[i]
        a, b = divmod(int(codes[i - v]), v)
        return f"{words[a]} {words[b]}"

    # every cluster's terms ranked in one sort, the cluster first: by weight, on a tie the bigram ("high school") first,
    # then the term's order (each cluster's terms come in it: the stable sort keeps it without a key of its own)
    weights.sort_indices()
    row = np.repeat(np.arange(n_clusters), np.diff(weights.indptr))
    idx = weights.indices
    ranked = idx[np.lexsort((idx < v, -weights.data, row))]
    # each cluster's first n_keywords * 4, as _drop_contained reads them, with their words as ids (a bigram's two)
    place = np.arange(len(ranked)) - weights.indptr[row]
    read = place < n_keywords * 4
    candidates, place = ranked[read].astype(np.int64), place[read]
    pair = codes[np.maximum(candidates - v, 0)] if len(codes) else np.zeros(len(candidates), np.int64)
    first_word = np.where(candidates < v, candidates, pair // v)
    second_word = np.where(candidates < v, -1, pair % v)
    kept = _drop_contained_ids(first_word, second_word, row[read], place, n_clusters, n_keywords)
    terms, term_at = np.unique(candidates[kept], return_inverse=True)
    names = [term(t) for t in terms.tolist()]
    kept_names = list(map(names.__getitem__, term_at.ravel().tolist()))
    bounds = np.r_[0, np.cumsum(np.bincount(row[read][kept], minlength=n_clusters))].tolist()
    return [tuple(kept_names[bounds[c]:bounds[c + 1]]) for c in range(n_clusters)]


def _drop_contained_ids(first_word: np.ndarray, second_word: np.ndarray, cluster: np.ndarray, place: np.ndarray,
                        n_clusters: int, limit: int) -> np.ndarray:
    """_drop_contained of every cluster at once, over terms as word ids (second_word -1: a single word), each cluster's
    terms in order (place: 0, 1, ...): which terms it keeps. Step p reads every cluster's p-th term (the Python
    reading made a set of words for each of ~1M terms at 1M synthetic headlines: 0.45 -> 0.1 s)."""
    kept = np.zeros(len(first_word), bool)
    used = np.full((n_clusters, 2 * limit), -1, np.int64)  # the words of the terms kept so far
    count = np.zeros(n_clusters, np.int64)
    by_place = np.argsort(place, kind="stable")
    bounds = np.searchsorted(place[by_place], np.arange(int(place.max()) + 2) if len(place) else [0]).tolist()
    for p in range(len(bounds) - 1):
        at = by_place[bounds[p]:bounds[p + 1]]
        c = cluster[at]
        a, b = first_word[at], second_word[at]
        held = used[c]
        free = ~(held == a[:, None]).any(axis=1) & ((b < 0) | ~(held == b[:, None]).any(axis=1)) & (count[c] < limit)
        at, c, a, b = at[free], c[free], a[free], b[free]
        kept[at] = True
        used[c, 2 * count[c]] = a
        used[c, 2 * count[c] + 1] = b
        count[c] += 1
    return kept


def _drop_contained(terms: Iterable[str], limit: int) -> tuple[str, ...]:
    """'contested ballots' and 'ballots districts' say one thing twice: a term sharing a word with a better one is
    dropped; the first `limit` kept."""
    out: list[str] = []
    used: set[str] = set()
    for t, w in ((t, set(t.split())) for t in terms):
        if len(out) == limit:
            break
        if w & used:
            continue
        used |= w
        out.append(t)
    return tuple(out)


def name_topics(story_names: dict[int, Name], story_topic: np.ndarray, story_sizes: np.ndarray, n_keywords: int = 6,
                n_representatives: int = 3, common_share: float = 0.5, min_topics: int = 3, *,
                titles: Sequence[str] | None = None, joined_share: float = 0.8, headlines: HeadlineTokens | None = None) -> dict[int, Name]:
    """A topic's name from what its stories share: the keywords of its stories (story_names, by story label), weighed
    by how many of its stories list each (c-TF-IDF with stories as the documents), never a phrase of one headline.

    Why from the stories: a topic named from its most central headlines ("trump, donald, host" over a stream of
    29 categories; "american, eagle, dick" over one story's stray headlines) says what one story or headline said.
    Each story's keywords already have the learned boilerplate and common words out; here a term listed by at
    least ``common_share`` of the topics (``min_topics`` or more) names none of them, and a bare word that a bigram
    of the same topic's stories holds ("donald" beside "donald trump", "eagle" beside "american eagle") gives way to
    that bigram (first names and halves of names), which takes the better of the two weights.
    With ``titles`` (each row's headline), a bare word that the topic's stories' representative headlines follow
    by one same word at least ``joined_share`` of the times ("zac" by "efron", "miley" by "cyrus") is named with
    it, and that word alone gives way.
    Representatives: the title headline of each of its largest stories.
    ``headlines``: the representatives' titles as token ids, where the caller has them (name_stories_and_topics).
    """
    story_topic = np.asarray(story_topic)
    topics = np.unique(story_topic[story_topic >= 0])
    if len(topics) == 0:
        return {}
    index = {int(t): i for i, t in enumerate(topics)}
    counts: list[Counter] = [Counter() for _ in topics]
    rank: list[dict[str, int]] = [{} for _ in topics]  # ties: the better place a term holds in its stories' own lists
    n_stories = [0.0] * len(topics)
    for s, t in enumerate(story_topic.tolist()):
        if t < 0:
            continue
        i = index[t]
        n_stories[i] += 1
        name = story_names.get(s)
        if name is not None:
            counts[i].update(set(name.keywords))
            places = rank[i]
            for place, term in enumerate(name.keywords):
                places[term] = min(place, places.get(term, place))
    spread = Counter(term for c in counts for term in c)  # topics listing each term
    total = Counter()
    for c in counts:
        total.update(c)
    avg = sum(total.values()) / len(topics)
    common = {term for term, k in spread.items() if len(topics) >= min_topics and k >= min_topics and k >= common_share * len(topics)}
    names: dict[int, Name] = {}
    if titles is not None:  # every topic's headlines tokenized in one pass
        following = headlines if headlines is not None else HeadlineTokens.of_titles(titles, [r for name in story_names.values() for r in name.representatives])
    idf: dict[str, float] = {}  # each term's np.log1p(avg / total[term]), computed once
    for t, i in index.items():
        weight = {}
        for term, c in counts[i].items():
            if term not in common:
                w = idf.get(term)
                if w is None:
                    w = idf[term] = float(np.log1p(avg / total[term]))
                weight[term] = c / n_stories[i] * w
        for term in [x for x in weight if " " in x]:  # a bare word gives way to a bigram of this topic holding it
            for word in term.split():
                if word in weight:
                    weight[term] = max(weight[term], weight.pop(word))
        # ties within 1e-9 go by place, then name: the weights rounded in one call (np.round: as round() of each
        # np.float64 weight rounds it), plain floats throughout (the same IEEE operations as numpy scalars, ~10x cheaper)
        rounded = dict(zip(weight, np.round(np.fromiter(weight.values(), np.float64, len(weight)), 9).tolist()))
        places = rank[i]
        ranked = sorted(weight, key=lambda x: (-rounded[x], places[x], x))
        members = np.flatnonzero(story_topic == t)
        if titles is not None:
            rows = [r for s in members.tolist() if s in story_names for r in story_names[s].representatives]
            terms = ranked[: n_keywords * 4]
            ranked = _joined_names(terms, following.most_common(rows, [x for x in terms if " " not in x]), joined_share)
        largest = members[np.argsort(-np.asarray(story_sizes)[members], kind="stable")]
        reps = tuple(islice((story_names[s].title_row for s in largest.tolist()
                             if s in story_names and story_names[s].title_row >= 0), max(n_representatives, 0)))
        names[t] = Name(keywords=_drop_contained(ranked[: n_keywords * 4], n_keywords), representatives=reps,
                        title_row=reps[0] if reps else -1)
    return names


def _joined_names(terms: list[str], follows: dict[str, tuple[str, int, int]], share: float) -> list[str]:
    """A bare word that these headlines follow by one same word at least `share` of the times (twice or more) is
    named with it ("zac" -> "zac efron"); that word alone then gives way. follows: HeadlineTokens.most_common of
    the terms' bare words."""
    out, dropped = [], set()
    for t in terms:
        if t in dropped:
            continue
        if t in follows:
            word, k, total = follows[t]
            if k >= 2 and k >= share * total and word != SEP and word not in stop_words():
                out.append(f"{t} {word}")
                dropped.add(word)
                continue
        out.append(t)
    return [t for t in out if t not in dropped]


class HeadlineTokens:
    """Headlines (rows of the titles) as token ids: which token follows a word how often, over any of them at once
    (a Counter of the next token of each word, headline by headline, cost 1M synthetic headlines' topics 0.15 s)."""

    def __init__(self, rows: np.ndarray, ids: np.ndarray, begin: np.ndarray, end: np.ndarray, vocab: Vocabulary):
        """rows: each headline's row (distinct); its tokens: ids[begin[i]:end[i]], ids into vocab, as tokenize reads it."""
        order = np.argsort(rows)
        self.rows, self.begin, self.end = np.asarray(rows)[order], begin[order], end[order]
        self.ids, self.vocab = ids, vocab

    @classmethod
    def of_titles(cls, titles: Sequence[str], rows: list[int]) -> HeadlineTokens:
        """These rows of titles, tokenized in one pass."""
        rows = np.unique(np.asarray(rows, np.int64))
        texts = pick(titles, rows.tolist())
        vocab = Vocabulary()
        ids, starts = vocab.docs(BOUNDARY.join(texts), len(texts), lambda: texts)
        return cls(rows, ids, starts[:-1], starts[1:], vocab)

    def most_common(self, rows: list[int], words: list[str]) -> dict[str, tuple[str, int, int]]:
        """For each of words that these headlines (rows, in this order) hold before another token: (the token that
        follows it most often, on a tie the one seen first; how often it does; how often a token follows the word),
        as a Counter of the next tokens, read headline by headline, gives them."""
        asked = np.asarray(rows, np.int64)
        at, found = find_sorted(self.rows, asked)
        if not found.all():
            raise ValueError("headlines asked for that these tokens do not hold (another naming's rows?)")
        begin, n_pairs = self.begin[at], np.maximum(self.end[at] - self.begin[at] - 1, 0)
        first = np.repeat(begin - np.cumsum(n_pairs) + n_pairs, n_pairs) + np.arange(int(n_pairs.sum()))
        index = self.vocab.index
        wanted = np.array([i for i in (dict.get(index, w) for w in words) if i is not None and i > CUT_ID], np.int64)
        hit = np.isin(self.ids[first], wanted)
        a, b = self.ids[first][hit], self.ids[first + 1][hit]
        if not len(a):
            return {}
        v = len(self.vocab.words)
        pairs, seen_at, count = np.unique(a * v + b, return_index=True, return_counts=True)  # first sight: a stable sort
        word = pairs // v
        groups = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
        best = np.lexsort((seen_at, -count, word))[groups]
        names = self.vocab.words
        return {names[w]: (names[n], k, total) for w, n, k, total in
                zip(word[groups].tolist(), (pairs[best] % v).tolist(), count[best].tolist(), np.add.reduceat(count, groups).tolist())}
