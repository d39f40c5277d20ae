"""Plain data passed between the core, the use cases and the adapters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np

NOISE = -1


def utcnow() -> datetime:
    """The history's clock: naive UTC, as every stored time is."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def unix_seconds(value: datetime | str | None) -> float:
    """Unix seconds of a naive-UTC time (a datetime, or the ISO text SQLite returns); 0 for unknown."""
    if value is None:
        return 0.0
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc).timestamp()


# documents.extra key of a row dated beyond the ingest tolerance (its stated time, ISO, UTC): such a row has no
# published time, the report lists it apart at the time it claims, and alert times leave it out
FUTURE_KEY = "future_published_at"


def document_key(guid: str | None, url: str | None, title: str, description: str) -> str:
    """A document's identity: its guid, else its url, else a hash of its text."""
    if guid and guid.strip():
        return "guid:" + guid.strip()
    if url and url.strip():
        return "url:" + url.strip()
    digest = hashlib.sha256((title.strip() + "\n" + description.strip()).encode("utf-8")).hexdigest()
    return "text:" + digest


def document_id(key: str) -> int:
    """Milvus primary key derived from the identity, so a retried insert overwrites instead of doubling."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") & ((1 << 63) - 1)


@dataclass(frozen=True)
class Headline:
    key: str
    title: str
    description: str
    url: str | None
    published_at: datetime | None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return document_id(self.key)

    @property
    def text(self) -> str:
        return f"{self.title}. {self.description}".strip() if self.description else self.title


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    row: dict[str, str]


@dataclass(frozen=True)
class ClusterEvent:
    kind: str  # born, grew, shrank, split, merged, died; moved (a story changed topic: parents=(old topic,), children=(new,))
    cluster_id: int  # a story id, or a topic id when level is "topic"
    parents: tuple[int, ...] = ()
    children: tuple[int, ...] = ()
    size_before: int = 0
    size_after: int = 0
    level: str = "story"


@dataclass(frozen=True)
class Neighbours:
    """Row i: the k nearest other documents of document i, closest first; -1 / inf where fewer exist."""

    indices: np.ndarray  # (n, k) int64
    distances: np.ndarray  # (n, k) float32

    @property
    def k(self) -> int:
        return self.indices.shape[1]


# A float32 cosine of two identical unit vectors comes back as 1 minus a few 1e-7 (Milvus gave
# 1 - 7e-7), which the square root turns into a distance of ~1e-3: far past DUPLICATE_DISTANCE, so a
# twin was a duplicate by one search path and not by the other. Cosines this close to 1 are 1.
COSINE_ROUNDING = 2e-6


def cosine_to_distance(similarity: np.ndarray) -> np.ndarray:
    """The distance every neighbour list holds, Euclidean between unit vectors, sqrt(2 - 2·cos): the vector stores
    answer in it (Milvus's COSINE gives a similarity) and the clustering core measures in it."""
    similarity = np.where(similarity >= 1.0 - COSINE_ROUNDING, 1.0, similarity)
    return np.sqrt(np.clip(2.0 - 2.0 * similarity, 0.0, 4.0)).astype(np.float32)


@dataclass(frozen=True)
class Run:
    """A rebuild as the history keeps it, its JSON columns read once. The `*_used` sizes are what the fit chose
    (None until the run is done, and in runs older than them)."""

    id: int
    status: str  # running, done, failed
    started_at: datetime | None = None
    finished_at: datetime | None = None
    n_documents: int | None = None
    n_stories: int | None = None  # SQL: runs.n_clusters
    n_noise: int | None = None
    timings: dict[str, float | str] = field(default_factory=dict)  # seconds per stage; {"error": why} for a failed run
    knn_k: int | None = None
    min_samples: int | None = None
    story_min_cluster_size: int | None = None
    topic_min_cluster_size: int | None = None
    min_cluster_size_used: int | None = None
    topic_min_cluster_size_used: int | None = None


class RunLevels(NamedTuple):
    """A rebuild's labels at both levels, sorted by document id (topics: the documents with a topic; none in runs
    before topics). run_id and held: the run they are of and the repository's own reading of its rows, handed back
    to commit_run so the next rebuild's commit does not read them again (None: not read from a repository)."""
    doc_ids: np.ndarray
    stories: np.ndarray
    topic_doc_ids: np.ndarray
    topics: np.ndarray
    run_id: int | None = None
    held: dict[str, np.ndarray] | None = None


class ExportRow(NamedTuple):
    """One document with its latest placement (all None before any) and the names as of the latest rebuild."""

    key: str
    id: int
    title: str
    cluster_id: int | None
    topic_id: int | None
    probability: float | None
    outlier_score: float | None
    assigned_by: str | None
    run_id: int | None
    story_name: str | None
    topic_name: str | None


class FailedRun(NamedTuple):
    run_id: int
    at: datetime | None
    error: str


class FailedFile(NamedTuple):
    name: str
    at: datetime | None
    reason: str | None


class FileWaiting(NamedTuple):
    """A file the service will take again (retrying) or leaves where it is (parked), with why."""

    name: str
    state: str
    attempts: int
    reason: str | None


@dataclass
class HistoryStatus:
    """What the history says about the service: counts, the latest rebuild, the latest failures (times naive UTC)."""

    documents: int
    stories: int  # in the latest finished rebuild
    noise: int  # documents that rebuild put in no story
    pending_arrivals: int  # documents ingested since that rebuild started
    last_run_id: int | None
    last_run_at: datetime | None
    running_since: datetime | None  # a rebuild marked running
    failed_run: FailedRun | None  # the latest
    failed_file: FailedFile | None  # the latest failed, retrying or parked file
    files: dict[str, int]  # ledger state -> files
    files_waiting: list[FileWaiting]


# -- what the report reads ---------------------------------------------------------------------------------------

@dataclass
class ReportDocs:
    """The documents a run placed (its rebuild, then arrivals placed under it: the latest placement wins), columnar."""

    ids: np.ndarray  # int64
    story: np.ndarray  # int64, -1 noise
    topic: np.ndarray  # int64, -1 none
    probability: np.ndarray  # float32
    predicted: np.ndarray  # bool: placed between rebuilds
    published: np.ndarray  # datetime64[s], NaT where the row had no published time
    ingested: np.ndarray  # datetime64[s]
    titles: list[str]
    urls: list[str | None]
    sources: list[str | None]
    future: np.ndarray | None = None  # datetime64[s]: the far-future time a row claimed (kept apart, not published), else NaT

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class StoryRow:
    story_id: int
    topic_id: int
    size: int
    title: str
    keywords: list[str]


@dataclass
class TopicRow:
    topic_id: int
    size: int
    n_stories: int
    name: str
    keywords: list[str]


@dataclass
class ChangeEvent:
    level: str  # story or topic
    kind: str  # born, split, merged, died, moved
    cluster_id: int
    parents: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)


@dataclass
class Alert:
    at: datetime | None
    kind: str  # new or surging
    story_id: int
    topic_id: int | None
    topic_name: str | None
    title: str
    size: int
    recent: int
    stream_time: np.datetime64  # NaT when unknown


@dataclass
class Lineage:
    previous_run: int | None
    flows: list[tuple[int, int, int]]  # (story in previous run, story now, documents); -1 = noise
    events: list[ChangeEvent]
    previous_names: dict[int, str]
    previous_topics: dict[int, int]  # story -> topic in the previous run
    previous_topic_names: dict[int, str] = field(default_factory=dict)
