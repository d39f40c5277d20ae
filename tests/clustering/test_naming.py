"""Cluster names: keywords free of learned boilerplate, distinct representatives, the most central headline as title."""

from __future__ import annotations

import re
from itertools import pairwise

import numpy as np
import pytest

from service.clustering.naming import (
    Name,
    _keywords_and_keys,
    _keywords_and_keys_by_row,
    name_clusters,
)

OUTLETS = [" - Reuters", " | AP News", " - The New York Times", " - BBC News"]
FEED_TAILS = [" Continue reading...", " Read more", " Read Full Article at RT.com", ""]

STORIES = {
    0: ("wildfire", ["Wildfire forces evacuations in the valley", "Firefighters battle wildfire near homes", "Wildfire smoke blankets the valley towns",
                     "Evacuations widen as wildfire jumps the ridge", "Crews contain part of the valley wildfire", "Wildfire evacuees return to burned homes"]),
    1: ("fed", ["Fed raises interest rates by a quarter point", "Central bank lifts interest rates again", "Fed chair signals more interest rate hikes",
                "Bond markets slide after Fed rate decision", "Interest rates climb to highest level in decades", "Fed holds firm on interest rates outlook"]),
    2: ("cup", ["Striker scores twice in cup final", "Cup final ends in penalty shootout", "Keeper saves two penalties in cup final",
                "Fans celebrate cup final victory parade", "Cup final hero striker signs new contract", "Underdogs reach the cup final"]),
    3: ("quake", ["Earthquake shakes coastal city overnight", "Rescuers search rubble after earthquake", "Earthquake aftershocks rattle coastal residents",
                  "Magnitude seven earthquake hits the coast", "Earthquake survivors wait for aid", "Coastal earthquake damages harbour"]),
    4: ("mars", ["Rover finds signs of ancient water on Mars", "Mars rover drills into ancient lake bed", "Scientists thrilled by Mars water discovery",
                 "Mars rover sends panorama of crater", "Ancient Mars lake held organic molecules", "Rover climbs Mars crater rim"]),
}
OWN_WORDS = {0: {"wildfire", "valley", "evacuations"}, 1: {"interest", "rates", "fed"}, 2: {"cup", "final", "striker", "penalty"},
             3: {"earthquake", "coastal", "rubble"}, 4: {"mars", "rover", "ancient"}}
BOILERPLATE = {"reuters", "ap", "news", "york", "times", "bbc", "nbsp", "amp", "quot", "continue", "reading", "read", "rt", "com", "article", "full"}


def corpus(copies_of_first: int = 0, seed: int = 0):
    """Every story's headlines carry outlet suffixes and feed tails; vectors are the story's axis plus a random offset.
    copies_of_first adds copies of story 1's first headline, each with another outlet suffix and description and a
    vector apart from the others (cosine < 0.95), so only the wording can tell they are one headline."""
    rng = np.random.default_rng(seed)
    texts, labels, offsets = [], [], []
    for s, (_, heads) in STORIES.items():
        for j, h in enumerate(heads):
            for k in range(2):  # each headline twice from different outlets: outlet and tail in every story
                i = len(texts)
                desc = f"Officials&nbsp;said more on {h.split()[0].lower()} &amp; &quot;details&quot; later.{FEED_TAILS[(i + s) % 4]}"
                outlet = OUTLETS[0] if s == 0 else OUTLETS[(j + k + s) % 4]  # story 0: all Reuters, "reuters" in every row
                texts.append(f"{h}{outlet} {desc}")
                labels.append(s)
    for c in range(copies_of_first):
        texts.append(f"{STORIES[1][1][0]}{OUTLETS[c % 4]} Copy number {c} of the wire story {['alpha', 'beta', 'gamma', 'delta'][c % 4]}.")
        labels.append(1)
    labels = np.array(labels, np.int64)
    axes = np.eye(8, 64)
    offsets = rng.standard_normal((len(texts), 64))
    offsets[:, :8] = 0
    offsets *= 0.4 / np.linalg.norm(offsets, axis=1, keepdims=True)  # members at cosine ~0.86 to each other
    vecs = (axes[labels] + offsets).astype(np.float32)
    return texts, np.array(labels, np.int64), vecs


def headline_key(text: str) -> str:
    """The headline as a reader sees it: no outlet suffix, no case or punctuation."""
    for o in OUTLETS:
        if o in text:
            text = text.split(o)[0]
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def test_learned_boilerplate_never_a_keyword_while_each_storys_own_words_are():
    texts, labels, vecs = corpus()
    names = name_clusters(texts, labels, vecs)
    assert sorted(names) == [0, 1, 2, 3, 4]
    for s, name in names.items():
        words = {w for k in name.keywords for w in k.split()}
        assert not words & BOILERPLATE, (s, name.keywords)
        assert words & OWN_WORDS[s], (s, name.keywords)
        assert len(set(name.keywords)) == len(name.keywords) == 6


def test_representatives_are_distinct_headlines_even_among_many_copies():
    texts, labels, vecs = corpus(copies_of_first=12)
    names = name_clusters(texts, labels, vecs, n_representatives=4)
    for s, name in names.items():
        keys = [headline_key(texts[r]) for r in name.representatives]
        assert len(keys) == 4 and len(set(keys)) == 4, (s, [texts[r] for r in name.representatives])
        assert all(labels[r] == s for r in name.representatives)
    # the copies were spread so that no vector rule could catch them: the wording did
    copies = np.flatnonzero(np.char.startswith(np.array(texts), STORIES[1][1][0]))
    unit = vecs[copies] / np.linalg.norm(vecs[copies], axis=1, keepdims=True)
    cos = unit @ unit.T
    assert (cos[~np.eye(len(copies), dtype=bool)] < 0.95).all()
    assert len(set(names[1].representatives) & set(copies.tolist())) == 1


def test_near_identical_vectors_count_once_whatever_the_words():
    texts = ["Storm hits the coast", "Coast battered by storm", "Storm batters coastal towns", "Storm damage counted",
             "Volcano erupts", "Lava flows from volcano", "Ash cloud grounds flights"]
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    vecs = np.array([[1, 0.10, 0, 0], [1, 0.101, 0, 0], [1, -0.3, 0.2, 0], [1, 0.5, -0.5, 0],
                     [0, 0, 1, 0.1], [0, 0, 1, -0.2], [0, 0.3, 1, 0.4]], np.float32)
    names = name_clusters(texts, labels, vecs)
    assert len(names[0].representatives) == 3
    assert not {0, 1} <= set(names[0].representatives)  # cosine > 0.99: one of the two


def test_title_is_the_most_central_distinct_headline():
    texts, labels, vecs = corpus(copies_of_first=6)
    names = name_clusters(texts, labels, vecs)
    for s, name in names.items():
        rows = np.flatnonzero(labels == s)
        closeness = vecs[rows] @ vecs[rows].mean(axis=0)
        assert name.title_row == name.representatives[0] == rows[np.argmax(closeness)]
        order = rows[np.argsort(-closeness, kind="stable")]
        assert list(name.representatives) == sorted(name.representatives, key=lambda r: list(order).index(r))


def test_titles_argument_dedups_short_unlearned_outlet_suffixes():
    texts = ["Quake hits northern city - Foo Daily", "Quake hits northern city | Bar Herald", "Rescue teams reach quake zone",
             "Aid convoy heads to quake zone", "Team wins league title", "League champions parade", "Title race ends early"]
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    vecs = np.array([[1, 0, 0], [1, 0.4, 0], [1, -0.5, 0.1], [1, 0.6, -0.6], [0, 1, 5], [0.3, -1, 5], [0.5, 1, 5]], np.float32)
    names = name_clusters(texts, labels, vecs, titles=texts)
    assert not {0, 1} <= set(names[0].representatives)
    assert len(names[0].representatives) == 3


def test_deterministic_and_independent_of_label_values():
    texts, labels, vecs = corpus(copies_of_first=5)
    a = name_clusters(texts, labels, vecs)
    b = name_clusters(list(texts), labels.copy(), vecs.copy())
    assert a == b
    relabelled = np.where(labels >= 0, labels * 7 + 3, -1)
    c = name_clusters(texts, relabelled, vecs)
    assert {k * 7 + 3: v for k, v in a.items()} == c


def test_noise_few_clusters_and_empty_inputs():
    assert name_clusters([], np.zeros(0, np.int64), np.zeros((0, 4), np.float32)) == {}
    assert name_clusters(["a b", "c d"], np.array([-1, -1]), np.eye(2, dtype=np.float32)) == {}
    texts = ["Wildfire forces evacuations", "Wildfire spreads in valley", "noise row about nothing", "Fed raises rates", "Fed rate hike"]
    labels = np.array([0, 0, -1, 1, 1])
    vecs = np.array([[1, 0.1], [1, 0.2], [0.5, 0.5], [0.1, 1], [0.2, 1]], np.float32)
    names = name_clusters(texts, labels, vecs)  # two clusters: too few to learn from, plain c-TF-IDF
    assert "wildfire" in names[0].keywords and "fed" in names[1].keywords
    assert 2 not in names[0].representatives + names[1].representatives
    assert isinstance(names[0], Name) and names[0].title_row in (0, 1)
    assert name_clusters(["!!", "??"], np.array([0, 0]), np.eye(2, dtype=np.float32))[0].keywords == ()


def test_a_topic_is_named_by_what_its_stories_share_never_one_storys_stray_word():
    from service.clustering.naming import name_topics

    stories = {0: Name(("oil prices", "opec", "saudi"), (10,), 10), 1: Name(("oil prices", "opec", "pipeline"), (20,), 20),
               2: Name(("oil prices", "shale", "drillers"), (30,), 30), 3: Name(("cup final", "striker"), (40,), 40),
               4: Name(("cup final", "penalty", "keeper"), (50,), 50), 5: Name(("election", "ballots"), (60,), 60),
               6: Name(("trump", "donald trump", "rally"), (70,), 70), 7: Name(("donald", "trump", "campaign"), (80,), 80)}
    story_topic = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    sizes = np.array([5, 50, 7, 9, 30, 6, 8, 12])
    names = name_topics(stories, story_topic, sizes)
    assert names[0].keywords[:2] == ("oil prices", "opec")  # listed by 3 and 2 of its 3 stories; "drillers" by one
    assert names[1].keywords[0] == "cup final"
    assert "donald" not in names[3].keywords and "donald trump" in names[3].keywords  # a bare first name gives way
    assert names[0].representatives == (20, 30, 10) and names[0].title_row == 20  # largest stories' titles first
    assert names[2].keywords == ("election", "ballots")  # a lone story's topic says what the story says
    assert set(names) == {0, 1, 2, 3}


def test_a_bare_first_name_is_named_with_the_word_its_headlines_follow_it_by():
    from service.clustering.naming import name_topics

    titles = ["Zac Efron stars in remake", "Zac Efron leaves rehab", "Efron praised by critics", "Miley Cyrus tour",
              "Zac Efron: the interview"]
    stories = {0: Name(("zac", "efron", "remake"), (0, 1), 0), 1: Name(("efron", "critics"), (2, 4), 2), 2: Name(("miley", "tour"), (3,), 3)}
    names = name_topics(stories, np.array([0, 0, 1]), np.array([9, 5, 4]), titles=titles)
    assert names[0].keywords[0] == "zac efron" and "zac" not in names[0].keywords and "efron" not in names[0].keywords
    assert names[1].keywords[0] == "miley"  # followed once only: too few times to tell


def test_a_title_said_to_tokenize_as_its_text_does():
    """naming reuses a text's tokens for its title when the description is empty; same_tokens must never say so wrongly
    (separators, colons, entities and odd endings included)."""
    from service.clustering.naming import same_tokens, tokenize

    rng = np.random.default_rng(3)
    parts = ["Storm", " - ", "Reuters", ":", " | ", "&amp;", "&amp", "ΑΣ", " •", "x", " ", "–", "·", "Fed's", "2024", "-"]
    for _ in range(3000):
        title = "".join(rng.choice(parts, int(rng.integers(1, 7))))
        for text in (" ".join((title, "")), " ".join((title, "more words"))):
            if same_tokens(title, text):
                assert tokenize(title) == tokenize(text), (title, text)


def test_batched_representatives_are_those_of_a_row_by_row_reading():
    """The batched stage (batched cosines, clusters re-read where near-duplicates sit among the first rows) names as a
    row-by-row reading of every story does (batched=False), on stories full of repeated headlines, outlet suffixes,
    descriptions and vectors at cosine > 0.95."""
    from dataclasses import astuple

    words = ["storm", "coast", "fed", "rates", "cup", "final", "quake", "city", "mars", "rover", "the", "over", "Zoë", "&amp;"]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        n = 400
        labels = rng.integers(-1, 25, n)
        titles = [" ".join(rng.choice(words, int(rng.integers(2, 6)))) + str(rng.choice(OUTLETS + ["", ""])) for _ in range(n)]
        titles = [titles[i // 2] if rng.random() < 0.3 else t for i, t in enumerate(titles)]  # repeated headlines
        descriptions = [str(rng.choice(["", "", "More on this.", "Read more", "Ends:", "Σ"])) for _ in titles]
        texts = [" ".join(p) for p in zip(titles, descriptions)]
        centres = rng.standard_normal((25, 16))
        vecs = centres[labels] + rng.standard_normal((n, 16)) * rng.choice([0.02, 0.5], (n, 1))  # some near-duplicates
        vecs = vecs.astype(np.float32)
        for docs in (5, 30):
            read = name_clusters(texts, labels, vecs, titles=titles, max_keyword_docs=docs, batched=False)
            for given in (None, descriptions):
                now = name_clusters(texts, labels, vecs, titles=titles, descriptions=given, max_keyword_docs=docs)
                assert {k: astuple(v) for k, v in now.items()} == {k: astuple(v) for k, v in read.items()}, (seed, docs)


def _real_rows(name: str) -> list[dict]:
    """The rows of a real headline file in ../shared/data (the test is skipped where it is not at hand)."""
    import csv

    from tests.conftest import SHARED_DATA

    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{name} not at hand")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _word_vectors(texts: list[str], dim: int = 64) -> np.ndarray:
    """Bag-of-words vectors (each word hashed to a dimension): repeated headlines land at cosine > 0.95 without a model."""
    from zlib import crc32

    from service.clustering.naming import tokenize

    out = np.zeros((len(texts), dim), np.float32)
    for i, t in enumerate(texts):
        for w in tokenize(t):
            out[i, crc32(w.encode()) % dim] += 1.0
    out[:, 0] += 0.01  # no zero vector
    return out


@pytest.mark.parametrize("name, label", [("stories_2k_labeled.csv", "story"), ("agnews_4k_labeled.csv", "topic"),
                                         ("news_data_dedup.csv", None)])
def test_names_over_token_ids_are_those_of_the_text_by_text_reading_on_real_headlines(name, label):
    """The id-based reading (one tokenizer pass, affixes cut over all documents at once, keys as id ranges) names every
    cluster as the text-by-text reading (batched=False) does on real feeds: outlet suffixes, separators, entities,
    non-ASCII, descriptions."""
    from dataclasses import astuple

    rows = _real_rows(name)
    titles = [r["title"] for r in rows]
    descriptions = [r.get("description") or "" for r in rows]
    texts = [" ".join(p) for p in zip(titles, descriptions)]
    vecs = _word_vectors(texts)
    groups = np.unique([r[label] for r in rows], return_inverse=True)[1].ravel() if label else np.arange(len(rows)) % 40
    for labels in (groups, np.arange(len(rows)) % 97, np.where(np.arange(len(rows)) % 5 == 0, -1, groups)):
        for docs in (5, 30):
            read = name_clusters(texts, labels, vecs, titles=titles, max_keyword_docs=docs, batched=False)
            for given in (None, descriptions):
                now = name_clusters(texts, labels, vecs, titles=titles, descriptions=given, max_keyword_docs=docs)
                assert {k: astuple(v) for k, v in now.items()} == {k: astuple(v) for k, v in read.items()}, (name, docs)
    docs_by_key = []
    order = np.argsort(groups, kind="stable")
    for read in (lambda *a: _keywords_and_keys(texts, titles, None, *a), lambda *a: _keywords_and_keys(texts, titles, descriptions, *a),
                 lambda *a: _keywords_and_keys_by_row(texts, titles, *a)):  # every row's headline keys, not only the picked rows'
        keywords, keys_of = read(order, groups[order], int(groups.max()) + 1, 6, 0.5, 3)[:2]
        holders: dict = {}
        for j in range(len(order)):
            for key in keys_of(j):
                holders.setdefault(key, set()).add(j)
        docs_by_key.append((keywords, sorted(map(sorted, holders.values()))))
    assert docs_by_key[0] == docs_by_key[2] and docs_by_key[1] == docs_by_key[2], name


def test_texts_tokenized_in_one_pass_as_one_by_one():
    """The id-based reading (Vocabulary.docs) joins the texts by a boundary character: no token, entity or lowercasing
    rule may cross it, and a text holding the character itself is read alone: each text's tokens are tokenize's.
    (White-box: the block reading is checked through the private Vocabulary._joined_ids.)"""
    from service.clustering.tokens import BOUNDARY, Vocabulary, tokenize

    rng = np.random.default_rng(5)
    parts = ["Storm", " - ", "Reuters", ":", " ", "&amp;", "&amp", "&", "amp;", "&#", "39;", "ΑΣ", "Σ", "•", "–", "·", "Fed's",
             "2024", "-", "x", "_a", "İ", "nbsp", "&nbsp;", ";", "\u00a0", BOUNDARY]
    for _ in range(300):
        texts = ["".join(rng.choice(parts, int(rng.integers(0, 6)))) for _ in range(int(rng.integers(0, 8)))]
        if rng.random() < 0.7:
            texts = [t.replace(BOUNDARY, "") for t in texts]
        expected = [tokenize(t) for t in texts]
        vocab = Vocabulary()
        ids, starts = vocab.docs(BOUNDARY.join(texts), len(texts), lambda texts=texts: texts)
        assert [[vocab.words[i] for i in ids[a:b]] for a, b in pairwise(starts)] == expected, texts
        whole, in_blocks = Vocabulary(), Vocabulary()  # the texts read a few characters' block at a time: the same tokens
        whole_ids = whole._joined_ids(BOUNDARY.join(texts), len(texts))
        block_ids = in_blocks._joined_ids(BOUNDARY.join(texts), len(texts), block=int(rng.integers(1, 6)))
        assert (whole_ids is None) == (block_ids is None), texts
        if whole_ids is not None:
            assert ([in_blocks.words[i] if i >= 0 else BOUNDARY for i in block_ids.tolist()]
                    == [whole.words[i] if i >= 0 else BOUNDARY for i in whole_ids.tolist()]), texts


def test_the_ascii_token_pattern_finds_what_the_unicode_one_finds_on_ascii_text():
    """An ASCII-only block is read with ASCII classes (tokens._ASCII_TOKEN_OR_BOUNDARY): on any mix of the 128 ASCII
    characters (\\x1c-\\x1f are whitespace to Unicode \\s) it finds the very tokens the Unicode pattern finds."""
    from service.clustering.tokens import _ASCII_TOKEN_OR_BOUNDARY, _TOKEN_OR_BOUNDARY

    rng = np.random.default_rng(3)
    ascii_chars = np.array([chr(i) for i in range(128)] + [" ", "a", "b", "-", ":", "|"] * 8)
    for _ in range(3000):
        text = "".join(rng.choice(ascii_chars, int(rng.integers(0, 30))))
        assert _ASCII_TOKEN_OR_BOUNDARY.findall(text) == _TOKEN_OR_BOUNDARY.findall(text), repr(text)


def test_central_members_are_each_clusters_rows_by_closeness_to_its_mean():
    """central_members (pieces of clusters gathered once, a cluster larger than a piece summed piece by piece) orders
    each cluster's rows as the plain reading does: the mean as the rows added one by one in row order (float32 kept),
    closeness as the dot product with it, ties in row order; labels of any values."""
    from service.clustering.naming import central_members

    rng = np.random.default_rng(4)
    for trial in range(8):
        n = 9_000 if trial == 0 else int(rng.integers(1, 3000))
        labels = rng.integers(-1, int(rng.integers(1, 40)), n)
        if trial % 3 == 0:
            labels = np.where(rng.random(n) < 0.95, 7, labels)  # trial 0: one cluster over more than a piece (8,192 rows)
        if trial % 4 == 1:
            labels = np.where(labels >= 0, labels * 10_000 + 5, -1)  # labels far apart
        vecs = rng.standard_normal((n, 8)).astype(np.float32 if trial % 2 == 0 else np.float64)
        vecs[rng.random(n) < 0.1] = vecs[0]  # ties
        expected_rows = []
        for label in np.unique(labels[labels >= 0]):
            rows = np.flatnonzero(labels == label)
            total = vecs[rows[0]].copy()
            for r in rows[1:]:
                total = total + vecs[r]
            centre = (total.astype(np.float64) / len(rows)).astype(vecs.dtype)
            closeness = np.einsum("ij,ij->i", vecs[rows], np.repeat(centre[None], len(rows), axis=0))
            expected_rows.extend(rows[np.argsort(-closeness, kind="stable")][:5].tolist())
        members = central_members(labels, vecs, 5)
        assert members.rows.tolist() == expected_rows, trial
        assert np.array_equal(members.labels[members.cluster], labels[members.rows])


def test_terms_sharing_a_word_with_a_better_one_are_dropped_alike_for_all_clusters_at_once():
    """_drop_contained_ids (every cluster's ranked terms as word ids, read a place at a time) keeps what _drop_contained
    keeps reading each cluster's terms as strings."""
    from service.clustering.naming import _drop_contained, _drop_contained_ids

    rng = np.random.default_rng(6)
    vocabulary = [f"w{i}" for i in range(12)]
    for _ in range(200):
        n_clusters, limit = int(rng.integers(1, 6)), int(rng.integers(0, 5))
        first, second, cluster, place, expected = [], [], [], [], []
        for c in range(n_clusters):
            terms = []
            for p in range(int(rng.integers(0, 10))):
                a, b = int(rng.integers(0, 12)), int(rng.integers(-1, 12))  # b -1: a single word; b == a: "w1 w1"
                first.append(a), second.append(b), cluster.append(c), place.append(p)
                terms.append(vocabulary[a] if b < 0 else f"{vocabulary[a]} {vocabulary[b]}")
            expected.append(_drop_contained(terms, limit))
        kept = _drop_contained_ids(*(np.array(x, np.int64) for x in (first, second, cluster, place)), n_clusters, limit)
        got = [[] for _ in range(n_clusters)]
        for k, c, a, b in zip(kept.tolist(), cluster, first, second):
            if k:
                got[c].append(vocabulary[a] if b < 0 else f"{vocabulary[a]} {vocabulary[b]}")
        assert [tuple(g) for g in got] == expected


def test_keywords_are_the_same_whether_documents_come_grouped_by_cluster_or_not():
    """_keywords counts each cluster's documents per term from one sort of (cluster, term, document) where documents
    come grouped by cluster (as name_clusters reads them), else from pairs summed by scipy: the same keywords."""
    from service.clustering.naming import _keywords, tokenize

    texts, labels, _ = corpus(copies_of_first=6)
    tokens = [tokenize(t) for t in texts]
    grouped = np.argsort(labels, kind="stable")
    shuffled = np.random.default_rng(7).permutation(len(texts))
    n = int(labels.max()) + 1
    for min_clusters in (1, 3):
        by_group = _keywords([tokens[i] for i in grouped], labels[grouped], n, 6, 0.5, min_clusters)
        assert by_group == _keywords([tokens[i] for i in shuffled], labels[shuffled], n, 6, 0.5, min_clusters)
        assert all(by_group)


def test_the_word_following_a_bare_word_is_counted_as_a_counter_of_next_tokens_would():
    """HeadlineTokens.most_common (every headline's token pairs as ids, counted by one sort) gives, for each word, the
    token that follows it most often (on a tie the one seen first), its count and the word's total, as Counters of the
    next token read headline by headline give them; separators count as followers."""
    from collections import Counter

    from service.clustering.naming import HeadlineTokens, tokenize

    rng = np.random.default_rng(8)
    pool = ["zac", "efron", "miley", "cyrus", "the", "new", " - ", ": ", "Zac", "x"]
    for _ in range(100):
        titles = ["".join(rng.choice(pool, int(rng.integers(0, 7)))) + " " + str(rng.choice(pool)) for _ in range(30)]
        following = HeadlineTokens.of_titles(titles, list(range(0, 30, 2)) + list(range(1, 30, 3)))
        rows = [int(r) for r in rng.permutation([*range(0, 30, 2), *range(1, 30, 3)])[: int(rng.integers(0, 25))]]
        words = ["zac", "miley", "the", "absent", "x"]
        expected: dict = {}
        for r in rows:
            toks = tokenize(titles[r])
            for a, b in pairwise(toks):
                if a in words:
                    expected.setdefault(a, Counter())[b] += 1
        assert following.most_common(rows, words) == {w: (*c.most_common(1)[0], sum(c.values())) for w, c in expected.items()}


@pytest.mark.parametrize("name, label", [("stories_2k_labeled.csv", "story"), ("agnews_4k_labeled.csv", "topic")])
def test_stories_and_topics_named_together_as_one_after_the_other(name, label):
    """name_stories_and_topics (the topics' headlines read from the token ids the stories' naming made) names as
    name_clusters then name_topics over the titles do, on real feeds, with and without descriptions."""
    from dataclasses import astuple

    from service.clustering.naming import name_stories_and_topics, name_topics

    rows = _real_rows(name)
    titles = [r["title"] for r in rows]
    groups = np.unique([r[label] for r in rows], return_inverse=True)[1].ravel()
    for descriptions in ([r.get("description") or "" for r in rows], [""] * len(rows)):
        texts = [" ".join(p) for p in zip(titles, descriptions)]
        vecs = _word_vectors(texts)
        for labels in (groups, np.where(np.arange(len(rows)) % 5 == 0, -1, np.arange(len(rows)) % 97)):
            story_topic = np.arange(int(labels.max()) + 1) % 7
            sizes = np.bincount(labels[labels >= 0], minlength=len(story_topic))
            stories = name_clusters(texts, labels, vecs, titles=titles, descriptions=descriptions, max_keyword_docs=30)
            topics = name_topics(stories, story_topic, sizes, titles=titles)
            for given in (descriptions, None):  # None: the texts read as they are, titles apart
                together = name_stories_and_topics(texts, labels, vecs, story_topic, titles=titles, descriptions=given,
                                                   max_keyword_docs=30)
                assert [{k: astuple(v) for k, v in d.items()} for d in together] == [{k: astuple(v) for k, v in d.items()}
                                                                                      for d in (stories, topics)]
            assert any(" " in k for t in topics.values() for k in t.keywords) or name != "stories_2k_labeled.csv"


def test_a_title_ending_in_an_encoded_separator_names_its_topic_as_the_title_alone_does():
    """Topics read each title's own tokens: a title whose last entity decodes to a dash ("... Zac &#8211;") must not
    take the separator the space after it makes in "title " (a review found "zac efron" lost to it)."""
    from service.clustering.naming import name_stories_and_topics, name_topics

    titles = ["Zac Efron film premiere tonight", "Zac Efron lands a big role", "Fans cheer for Zac &#8211;"]
    titles += [f"Zac {w} again today" for w in ["smiles", "waves", "sings", "dances", "laughs", "runs", "jumps"]]
    descriptions = [""] * len(titles)
    texts = [f"{t} " for t in titles]
    vecs = np.zeros((len(titles), 20), np.float32)
    vecs[:, 0] = np.where(np.arange(len(titles)) < 3, 2.0, 1.0)
    vecs[np.arange(len(titles)), 1 + np.arange(len(titles))] = 1.0
    labels = np.zeros(len(titles), np.int64)
    story_topic = np.array([0])
    stories = name_clusters(texts, labels, vecs, titles=titles, descriptions=descriptions)
    topics = name_topics(stories, story_topic, np.bincount(labels), titles=titles)
    assert name_stories_and_topics(texts, labels, vecs, story_topic, titles=titles, descriptions=descriptions) == (stories, topics)
    assert "zac efron" in topics[0].keywords
