"""Synthetic embeddings shaped like news: many story centres on the unit sphere, Zipf-sized, plus background."""

from __future__ import annotations

import numpy as np


def news_like_vectors(n: int, dim: int = 384, seed: int = 0, docs_per_story: int = 50, background: float = 0.1,
                      spread: float = 0.045) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, story per row; -1 = background). spread 0.045 in 384-d puts members at cos ≈ 0.75 to their centre."""
    rng = np.random.default_rng(seed)
    stories = max(1, n // docs_per_story)
    sizes = 1.0 / np.arange(1, stories + 1) ** 0.8
    n_story = int(n * (1 - background))
    story = rng.choice(stories, size=n_story, p=sizes / sizes.sum())
    out = np.empty((n, dim), np.float32)
    labels = np.full(n, -1, np.int64)
    labels[:n_story] = story
    step = 100_000
    for s in range(0, n, step):
        e = min(n, s + step)
        block = rng.standard_normal((e - s, dim)).astype(np.float32)
        rows = np.arange(s, e)
        in_story = rows < n_story
        if in_story.any():
            centres = _centres(labels[rows[in_story]], dim, seed)
            block[in_story] = centres + spread * block[in_story]
        out[s:e] = block / np.linalg.norm(block, axis=1, keepdims=True)
    perm = rng.permutation(n)
    return out[perm], labels[perm]


def _centres(ids: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Each story's centre comes from its own seed, so any block can make it without holding all centres."""
    uniq, inv = np.unique(ids, return_inverse=True)
    c = np.stack([np.random.default_rng((seed, int(u))).standard_normal(dim) for u in uniq]).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return c[inv]


# --- story-shaped corpus: stories (5-300 headlines, heavy-tailed) inside topics, plus background --------------------------
#
# Geometry, each level a unit vector mixed with fresh directions (a "cos" below is the cosine to the level above):
#   topic centre T   = u_T
#   story centre mu  = normalise(sqrt(news_shared) g + sqrt(story_in_topic) T + sqrt(1 - news_shared - story_in_topic) u_s)
#                      g: one direction all news shares (unrelated headlines sit at cosine ~0.05, not 0)
#   wording centre w = mu * c_w + sqrt(1 - c_w^2) e_w                                      near-identical rewrites of one headline
#   headline x       = w * c_x + sqrt(1 - c_x^2) e_x     (a loose share: mu * c + sqrt(1 - c^2) e_x, no near-duplicate)
# u_T, u_s are drawn from an anisotropic Gaussian (spectrum k^-centre_decay: real sentence embeddings use few
# effective dimensions, so unrelated stories' centres spread over cosines -0.1..0.4, not 0 +- 0.05 as isotropic 384-d
# directions would); e_w, e_x are isotropic (wording noise). c_w is drawn per wording around its story's tightness,
# c_x per headline. Background headlines are stories of one under topics of their own (truth -1 at both levels).
# The knobs below were set so that the cosine profile (cosine_profile) matches the real story set's:
# bench/scale.py prints both side by side.


from dataclasses import dataclass


@dataclass(frozen=True)
class StoryShape:
    min_story: int = 5
    max_story: int = 300
    size_alpha: float = 1.0  # Pareto tail of story sizes (truncated to [min_story, max_story])
    topics: int = 0  # 0: round(sqrt(n) / 3), clipped to 10..500 (105 at 100k, 333 at 1M)
    topic_zipf: float = 0.0  # > 0: topic weights rank^-topic_zipf (a few broad topics, a long tail of one-story ones); 0: Dirichlet 0.5
    background: float = 0.10
    news_shared: float = 0.12
    story_in_topic: float = 0.15
    centre_decay: float = 0.9
    tight_lo: float = 0.60  # each story's tightness (mean c_w), uniform in [tight_lo, tight_hi]
    tight_hi: float = 0.88
    wording_jitter: float = 0.10  # sd of c_w around the story's tightness
    headline_cos: float = 0.91  # mean c_x
    headline_jitter: float = 0.05
    docs_per_wording: float = 4.0
    loose_share: float = 0.12  # headlines that share no wording: cos to their story centre uniform in [loose_lo, loose_hi]
    loose_lo: float = 0.30
    loose_hi: float = 0.70


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _iso(rng, m: int, dim: int) -> np.ndarray:
    """m isotropic directions, orthogonalised against nothing: in 384-d they are near-orthogonal to everything."""
    return _unit(rng.standard_normal((m, dim)).astype(np.float32))


def story_shaped_vectors(n: int, dim: int = 384, seed: int = 0, shape: StoryShape = StoryShape()):
    """(unit vectors (n, dim) float32, story per row, topic per row); -1 = background at both levels. Rows shuffled."""
    rng = np.random.default_rng(seed)
    n_topics = shape.topics or int(np.clip(round(np.sqrt(n) / 3), 10, 500))
    n_story_docs = int(round(n * (1 - shape.background)))
    # story sizes: truncated Pareto until the story documents are used up (the last one trimmed, at least min_story)
    sizes = []
    left = n_story_docs
    while left >= shape.min_story:
        u = rng.random(4096)
        lo, hi, a = shape.min_story, shape.max_story, shape.size_alpha
        s = (lo ** -a - u * (lo ** -a - hi ** -a)) ** (-1 / a)
        for v in s.astype(np.int64):
            v = int(min(v, left))
            if left - v < shape.min_story:
                v = left
            sizes.append(v)
            left -= v
            if left < shape.min_story:
                break
    sizes = np.array(sizes, np.int64)
    n_bg = n - int(sizes.sum())
    n_stories = len(sizes)
    # topic weights heavy-tailed too (Dirichlet 0.5): some topics hold many stories, most a few dozen
    if shape.topic_zipf > 0:
        weights = 1.0 / np.arange(1, n_topics + 1) ** shape.topic_zipf
        weights = weights[rng.permutation(n_topics)]
    else:
        weights = rng.dirichlet(np.full(n_topics, 0.5))
    story_topic = rng.choice(n_topics, size=n_stories, p=weights / weights.sum())
    spectrum = np.sqrt(np.arange(1, dim + 1, dtype=np.float32) ** -shape.centre_decay)

    def aniso(m):
        return _unit(rng.standard_normal((m, dim)).astype(np.float32) * spectrum)

    g = aniso(1)[0]
    topic_c = aniso(n_topics)
    w_g, w_t = np.sqrt(shape.news_shared), np.sqrt(shape.story_in_topic)
    w_u = np.sqrt(1 - shape.news_shared - shape.story_in_topic)
    out = np.empty((n, dim), np.float32)
    story = np.full(n, -1, np.int64)
    topic = np.full(n, -1, np.int64)
    row = 0
    step = 2_000  # stories per block
    for s0 in range(0, n_stories, step):
        ids = np.arange(s0, min(n_stories, s0 + step))
        mu = _unit(w_g * g + w_t * topic_c[story_topic[ids]] + w_u * aniso(len(ids)))
        tight = rng.uniform(shape.tight_lo, shape.tight_hi, len(ids))
        n_w = np.maximum(1, np.ceil(sizes[ids] / shape.docs_per_wording).astype(np.int64))
        w_story = np.repeat(np.arange(len(ids)), n_w)
        c_w = np.clip(tight[w_story] + shape.wording_jitter * rng.standard_normal(len(w_story)), 0.2, 0.99).astype(np.float32)[:, None]
        w = mu[w_story] * c_w + np.sqrt(1 - c_w ** 2) * _iso(rng, len(w_story), dim)
        # each headline picks one of its story's wordings (first n_w headlines cover every wording once)
        d_story = np.repeat(np.arange(len(ids)), sizes[ids])
        w_start = np.concatenate([[0], np.cumsum(n_w)[:-1]])
        pos = np.concatenate([np.arange(k) for k in sizes[ids]])
        pick = np.where(pos < n_w[d_story], pos, (rng.random(len(d_story)) * n_w[d_story]).astype(np.int64))
        c_x = np.clip(shape.headline_cos + shape.headline_jitter * rng.standard_normal(len(d_story)), 0.3, 0.995).astype(np.float32)[:, None]
        base = w[w_start[d_story] + pick]
        loose = (rng.random(len(d_story)) < shape.loose_share) & (pos >= n_w[d_story])
        if loose.any():
            base[loose] = mu[d_story[loose]]
            c_x[loose, 0] = rng.uniform(shape.loose_lo, shape.loose_hi, int(loose.sum()))
        x = base * c_x + np.sqrt(1 - c_x ** 2) * _iso(rng, len(d_story), dim)
        m = len(d_story)
        out[row : row + m] = _unit(x)
        story[row : row + m] = ids[d_story]
        topic[row : row + m] = story_topic[ids[d_story]]
        row += m
    # background: each headline a story of its own under a topic of its own
    for b0 in range(0, n_bg, 50_000):
        m = min(50_000, n_bg - b0)
        mu = _unit(w_g * g + w_t * aniso(m) + w_u * aniso(m))
        c = rng.uniform(shape.tight_lo, shape.tight_hi, m).astype(np.float32)[:, None] * shape.headline_cos
        out[row : row + m] = _unit(mu * c + np.sqrt(1 - c ** 2) * _iso(rng, m, dim))
        row += m
    assert row == n
    perm = rng.permutation(n)
    return out[perm], story[perm], topic[perm]


# A topic-structured stream: many unequal topics (Zipf weights over stories: broad topics holding hundreds of stories,
# a tail holding one or two), their stories closer to their topic than story_shaped_vectors' (story_in_topic 0.30
# against 0.15: there, two stories of one topic sit nearly as far apart as two of different topics, see
# bench/quality.py --synthetic's ceiling row).
TOPIC_STRUCTURED = StoryShape(topics=60, topic_zipf=1.1, story_in_topic=0.30)


def topic_structured_vectors(n: int, dim: int = 384, seed: int = 0, shape: StoryShape = TOPIC_STRUCTURED):
    """(unit vectors, story per row, topic per row; -1 = background) of a stream of Zipf-sized topics."""
    return story_shaped_vectors(n, dim, seed, shape)


QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def cosine_profile(vectors: np.ndarray, story: np.ndarray, seed: int = 0, max_stories: int = 400, max_members: int = 300,
                   pairs: int = 200_000, probe: int = 1_000) -> dict[str, list[float]]:
    """Quantiles (QUANTILES) of the cosines that decide story clustering; story: labels, -1 = background (left out
    as a story, kept as a neighbour). Stories and probes are sampled above the caps, so large corpora cost O(n)."""
    rng = np.random.default_rng(seed)
    story = np.asarray(story)
    labelled = np.flatnonzero(story >= 0)
    uniq, inv = np.unique(story[labelled], return_inverse=True)
    sizes = np.bincount(inv)
    q = lambda x: [round(float(v), 3) for v in np.quantile(np.asarray(x, np.float64), QUANTILES)]  # noqa: E731
    # within: all pairs inside a sample of stories
    members = [labelled[inv == k] for k in (rng.choice(len(uniq), max_stories, replace=False) if len(uniq) > max_stories else range(len(uniq)))] \
        if len(uniq) <= 5_000 else None
    if members is None:  # avoid one pass over n per sampled story
        order = np.argsort(inv, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        members = [labelled[order[bounds[k] : bounds[k + 1]]] for k in rng.choice(len(uniq), max_stories, replace=False)]
    within, per_story = [], []
    for m in members:
        if len(m) < 2:  # a story cut by the corpus's end (arrivals took the rest): no pair
            continue
        m = m if len(m) <= max_members else rng.choice(m, max_members, replace=False)
        s = vectors[m] @ vectors[m].T
        iu = np.triu_indices(len(m), 1)
        within.append(s[iu])
        per_story.append(s[iu].mean())
    within = np.concatenate(within)
    # between: random pairs of headlines of two different stories
    a, b = rng.choice(labelled, pairs), rng.choice(labelled, pairs)
    keep = story[a] != story[b]
    between = np.einsum("ij,ij->i", vectors[a[keep]], vectors[b[keep]])
    # centroids: every story's, and each headline's cosine to its own
    cent = np.zeros((len(uniq), vectors.shape[1]), np.float64)
    np.add.at(cent, inv, vectors[labelled])
    cent = _unit(cent).astype(np.float32)
    to_own = np.einsum("ij,ij->i", vectors[labelled], cent[inv])
    sample = rng.choice(len(uniq), min(len(uniq), 2_000), replace=False)
    cc = cent[sample] @ cent.T
    cc[np.arange(len(sample)), sample] = -np.inf
    nearest_centroid = cc.max(axis=1)
    # nearest neighbour of a sample of story headlines over the whole corpus
    probes = rng.choice(labelled, min(probe, len(labelled)), replace=False)
    nn_cos, nn_same, other = [], [], []
    for part in np.array_split(probes, max(1, len(probes) // 100)):
        s = vectors[part] @ vectors.T
        s[np.arange(len(part)), part] = -np.inf
        j = s.argmax(axis=1)
        nn_cos.append(s[np.arange(len(part)), j])
        nn_same.append(story[j] == story[part])
        s[story[None, :] == story[part][:, None]] = -np.inf
        other.append(s.max(axis=1))
    return {
        "story_size": q(sizes),
        "within_story_pair": q(within),
        "story_mean_within": q(per_story),
        "to_own_centroid": q(to_own),
        "between_story_pair": q(between),
        "nearest_other_centroid": q(nearest_centroid),
        "nn_cos": q(np.concatenate(nn_cos)),
        "nearest_other_story_doc": q(np.concatenate(other)),
        "nn_same_story": [round(float(np.concatenate(nn_same).mean()), 3)],
    }


def print_profiles(real: dict, synth: dict, file=None) -> None:
    """Real vs synthetic, one row per statistic, quantiles side by side."""
    import sys

    file = file or sys.stderr
    head = " ".join(f"{q:>5}" for q in ("q01", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "q99"))
    print(f"{'statistic':<24} {'set':<6} {head}", file=file)
    for key in real:
        for name, prof in (("real", real), ("synth", synth)):
            vals = prof.get(key, [])
            print(f"{key:<24} {name:<6} " + " ".join(f"{v:5.0f}" if key == "story_size" else f"{v:5.3f}" for v in vals), file=file)


# --- a "same franchise" stream: a second event about one entity arrives in bulk while the first runs --------------------
#
# Real headlines showed an id turn into another event when one did (a season trailer, then a video game's TV show of the
# same franchise, 313 headlines in one rebuild). This stream reproduces the shape with our own text, embedded by the real
# model: the trailer story runs from day 0, the game show arrives in bulk on day `bulk_day`, other stories run beside.

FRANCHISE_EVENTS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "trailer": (["New Dragonfall season 4 trailer", "The Dragonfall season 4 teaser", "HBO's new Dragonfall trailer"],
                ["shows the queen's army marching north", "teases a bloody battle at the wall", "breaks the network's trailer record",
                 "reveals the return of a fan favourite", "lands ahead of the April premiere", "gives a first look at the new season"],
                ["Fans dissect every frame of the two-minute clip.", "The fourth season premieres in April.",
                 "The trailer was watched 20 million times in a day."]),
    "gameshow": (["Dragonfall video game", "Telltale's Dragonfall game", "Dragonfall game adaptation"],
                 ["gets its own live-action TV show", "to be turned into a streaming series", "TV series casts its lead hero",
                  "show hires a veteran showrunner", "series adaptation greenlit for ten episodes"],
                 ["The studio behind the hit game will produce the series.", "Players of the role-playing game will see its story on screen.",
                  "Filming of the game's adaptation starts next year."]),
}
FRANCHISE_SUBJECTS = ["Dragonfall", "HBO's Dragonfall", "Dragonfall TV", "Dragonfall fans say"]  # both events name the franchise so


def franchise_stream(seed: int = 0, days: int = 6, bulk_day: int = 4, trailer_per_day: int = 25, bulk: int = 200,
                     others_per_day: int = 12, shared_share: float = 0.6) -> list[dict]:
    """Rows (guid, title, description, published_at, story) in time order: `trailer` every day, `gameshow` `bulk`
    headlines on bulk_day and a tail after, five unrelated stories from the demo's themes, a few one-off headlines.
    shared_share: the share of the franchise's headlines that name it with a subject both events use."""
    import random
    from datetime import datetime, timedelta

    from service.demo import NOISE_ITEMS, THEMES

    rng = random.Random(seed)
    themes = {**FRANCHISE_EVENTS, **{k: THEMES[k] for k in ("wildfire", "rates", "quake", "climate", "pensions")}}
    start = datetime(2026, 3, 2, 6, 0)
    rows: list[tuple[datetime, str, str, str]] = []

    def add(story: str, day: int, count: int) -> None:
        subjects, actions, details = themes[story]
        for _ in range(count):
            when = start + timedelta(days=day, minutes=rng.randrange(0, 16 * 60))
            shared = story in FRANCHISE_EVENTS and rng.random() < shared_share
            rows.append((when, f"{rng.choice(FRANCHISE_SUBJECTS if shared else subjects)} {rng.choice(actions)}", rng.choice(details), story))

    for day in range(days):
        add("trailer", day, trailer_per_day)
        for story in ("wildfire", "rates", "quake", "climate", "pensions"):
            add(story, day, others_per_day)
        for _ in range(2):
            when = start + timedelta(days=day, minutes=rng.randrange(0, 16 * 60))
            rows.append((when, f"{rng.choice(NOISE_ITEMS)} in {rng.choice(['Ashby', 'Brell', 'Corwin'])}", "A local story.", "noise"))
        if day == bulk_day:
            add("gameshow", day, bulk)
        elif day > bulk_day:
            add("gameshow", day, bulk // 10)
    rows.sort(key=lambda r: r[0])
    return [{"guid": f"franchise-{seed}-{i:05d}", "title": t, "description": d, "published_at": w.isoformat(timespec="minutes"), "story": s}
            for i, (w, t, d, s) in enumerate(rows)]


def write_rows(path, rows: list[dict]) -> None:
    """rows (dicts with one set of keys) as a CSV with a header."""
    import csv

    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
