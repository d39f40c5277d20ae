"""The edges the use cases talk to: adapters implement them, bootstrap wires them, the App hands them out.

| port           | what it serves                                     | adapter                                   |
|----------------|----------------------------------------------------|-------------------------------------------|
| Embedder       | text -> unit vectors                               | adapters/embedders.py                     |
| VectorStore    | every vector, the source of truth                  | adapters/milvus.py                        |
| NeighbourIndex | the kept kNN graph and live index before the store | adapters/vector_cache.py                  |
| SearchIndex    | nearest stored headlines for a query, read only    | the store, or cache_reader.CopyIndex      |
| DocumentLedger | files taken and the documents they brought         | adapters/sql/ledger.py                    |
| RunHistory     | rebuilds, their stories and topics, placements     | adapters/sql/runs.py                      |
| StoryReads     | what people and the report read                    | adapters/sql/reads.py                     |
| AlertHistory   | what each story was announced as; the alerts       | adapters/sql/alerts.py                    |
| Coordination   | claims on files and leases between workers         | adapters/sql/coordination.py              |
| RunFiles       | per-run files beside the history (state/)          | state.py                                  |
| Notifier       | telling people about alerts (log, feed, webhook)   | adapters/notify.py                        |
| ReportPages    | a run's HTML page, rendered and published          | report/ (pages.py)                        |

Ids are document ids (domain.document_id); times are naive UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .clustering.assign import PredictionState
from .config import Settings
from .domain import (Alert, ClusterEvent, ExportRow, Headline, HistoryStatus, Lineage, Neighbours, ReportDocs, Run, RunLevels, StoryRow,
                     TopicRow)

# story labels a caller holds in memory, by run id: (document ids, story ids); a rebuild's page reads them from here
HeldLabels = dict[int, tuple[np.ndarray, np.ndarray]]

if TYPE_CHECKING:
    from .failpoints import Failpoints

SavedName = tuple[str, list[str], list[int]]  # what the history keeps to name a story or topic: (title, keywords, representative ids)


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


class SearchIndex(Protocol):
    """Search only: what a query needs, from whichever copy of the vectors this process may read."""

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine distances) of each query's k nearest stored vectors; missing slots are id -1, distance inf."""


class VectorStore(SearchIndex, Protocol):
    def upsert(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray) -> None: ...

    def count(self) -> int: ...

    def all_vectors(self, since_ts: int | None = None, by: str = "published") -> tuple[np.ndarray, np.ndarray]:
        """(ids sorted, vectors) of the whole collection, or of documents since since_ts (unix seconds)."""

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """Vectors of the given ids, in their order."""

    def iter_rows(self, batch_size: int = 5000, since_ts: int | None = None, by: str = "published",
                  without: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  strong: bool = True) -> Iterator[tuple[np.ndarray, ...]]:
        """(ids, vectors, published_ts, ingested_ts) in batches: the whole collection, for refilling a cache. With
        since_ts and without ((ids, ingested_ts) -> mask of the rows the caller holds as they are): only the others.
        strong=False: the rows the store holds now, not waiting for writes in flight (a caller that counted first and
        checks that count after)."""

    def release(self) -> bool:
        """Close, and hand back the memory an in-process engine holds for the collection (Milvus Lite: every vector);
        True if it did. A server holds nothing here: it stays open (False). The store is opened again to be used."""

    def close(self) -> None: ...


class NeighbourIndex(Protocol):
    """Each document's kNN list kept up to date as vectors arrive, so a rebuild reads a finished graph instead of
    searching, and arrivals are placed from a live index instead of a vector-store search. It fronts the
    vector store: writes go through it to the store."""

    last_sync: dict | None  # how the copy last met the store: current, caught up (rows read) or refilled

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray) -> None:
        """Add vectors (or correct known ones): written to the vector store, then to the index and the graph."""

    def neighbour_graph(self, since_ts: int | None = None, by: str = "published",
                        checked: Callable[[], object] | None = None) -> tuple[np.ndarray, np.ndarray, Neighbours]:
        """(ids sorted, vectors, their kNN lists re-indexed to that order) of the window since since_ts;
        `checked` is called once the copy has been checked against the vector store, which is not used after it."""

    def keep_up(self) -> int:
        """Between rebuilds, take in what other writers stored (the rebuild leader of a shared home); never a refill.
        Returns the rows taken in."""

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As VectorStore.search, from the live index where this process keeps one."""

    def warm_up(self) -> float:
        """Read back (or build) the live index before the first file needs it; the seconds it took."""


class DocumentLedger(Protocol):
    """The file ledger (one row per file however often it is retried) and the documents files brought."""

    def processed_file(self, sha256: str) -> int | None: ...
    def file_name(self, file_id: int) -> str | None: ...
    def start_file(self, name: str, sha256: str, size: int, tries: int = 1) -> tuple[int, int]:
        """(ledger row, attempt number)."""
    def finish_file(self, file_id: int, state: str, *, seen: int = 0, stored: int = 0, duplicate: int = 0, rejected: int = 0,
                    updated: int = 0, encoding: str | None = None, reason: str | None = None) -> None: ...
    def note_file(self, file_id: int, state: str, reason: str) -> None: ...
    def mark_interrupted(self) -> int:
        """Files a stop cut off mid-file, now 'interrupted'; how many."""

    def stored_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]: ...
    def add_documents(self, headlines: Sequence[Headline], file_id: int | None, ingested_at: datetime) -> int: ...
    def revise_documents(self, headlines: Sequence[Headline], file_id: int | None, at: datetime) -> None: ...
    def unplaced_ids(self, ids: Sequence[int]) -> np.ndarray: ...
    def all_document_ids(self) -> np.ndarray: ...
    def document_texts(self, ids: np.ndarray) -> dict[int, tuple[str, str]]: ...
    def document_text_columns(self, ids: np.ndarray) -> tuple[list[str], list[str]]:
        """(titles, descriptions) of ids, in their order ("" for an unknown id)."""
    def document_times(self, ids: np.ndarray) -> dict[int, tuple[datetime | None, datetime]]:
        """(published, ingested) of each id."""
    def newest_time(self, by: str) -> datetime | None: ...


class RunHistory(Protocol):
    """Rebuilds and what they produced, and the arrivals placed between them."""

    def abandon_running_runs(self, reason: str) -> int: ...
    def arrival_counts(self) -> tuple[int, int]:
        """(documents, documents ingested since the latest finished rebuild started)."""
    def start_run(self, params: dict) -> int: ...
    def fail_run(self, run_id: int, reason: str) -> None: ...
    def latest_run(self) -> Run | None:
        """The latest finished rebuild."""
    def done_runs(self) -> list[Run]: ...
    def run(self, run_id: int) -> Run | None: ...
    def next_story_id(self) -> int: ...
    def next_topic_id(self) -> int: ...
    def run_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(document ids, story ids) of a run."""
    def run_topic_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]: ...
    def run_levels(self, run_id: int) -> RunLevels:
        """Both levels of a run from one read (the rebuild's previous run)."""
    def placed_labels(self, run_id: int) -> tuple[np.ndarray, np.ndarray]: ...
    def story_topics(self, run_id: int) -> dict[int, int]: ...
    def commit_run(self, run_id: int, *, doc_ids: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, outlier_scores: np.ndarray,
                   names: dict[int, SavedName], events: Iterable[ClusterEvent], timings: dict[str, float], params: dict,
                   topics: np.ndarray | None = None, story_topics: dict[int, int] | None = None,
                   topic_names: dict[int, SavedName] | None = None, drift_checks: list[dict] | None = None,
                   previous: RunLevels | None = None) -> None:
        """Everything a rebuild produced, in one transaction. previous: run_levels of the last done run, as the
        rebuild read them (its rows are then not read again)."""
    def record_predictions(self, run_id: int, doc_ids: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                           outlier_scores: np.ndarray, topic_ids: np.ndarray | None = None) -> None: ...
    def noise_pool_ids(self, run_id: int) -> np.ndarray: ...
    def noise_pool_size(self, run_id: int) -> int: ...


class StoryReads(Protocol):
    """Reads for people (search hits, a story, a topic, the export, the status) and for the report page."""

    def documents(self, ids: Sequence[int]) -> dict[int, dict]: ...
    def story(self, story_id: int) -> dict | None: ...
    def topic(self, topic_id: int) -> dict | None: ...
    def export_rows(self) -> Iterator[ExportRow]: ...
    def status(self) -> HistoryStatus: ...
    def report_documents(self, run_id: int) -> ReportDocs: ...
    def run_stories(self, run_id: int) -> list[StoryRow]: ...
    def run_topics(self, run_id: int) -> list[TopicRow]: ...
    def lineage(self, run_id: int, held: HeldLabels | None = None) -> Lineage:
        """held: story labels the caller already has, by run id (document ids, story ids): those runs are not read back."""
    def run_alerts(self, run_id: int, limit: int = 20) -> list[Alert]: ...


class AlertHistory(Protocol):
    def story_times(self, run_id: int, since: datetime | None,
                    held: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(story id, news time in unix seconds) of every headline the run clustered or placed since `since`.
        held: the run's story labels (document ids, story ids) when the caller holds them: not read back."""
    def born_stories(self, run_id: int) -> set[int]: ...
    def earlier_homes(self, run_id: int, story_ids: list[int], runs_back: int = 3) -> dict[int, dict[int, int]]: ...
    def first_done_run(self) -> int | None: ...
    def story_cards(self, run_id: int) -> dict[int, dict]: ...
    def states(self) -> dict[int, tuple[bool, bool]]:
        """story id -> (announced as new, surging now)."""
    def record(self, raised: list[dict], states: dict[int, tuple[bool, bool]]) -> list[dict]: ...
    def latest(self, limit: int = 100) -> list[dict]: ...


class Coordination(Protocol):
    """Claims and leases through the store every worker shares: the store decides the race."""

    def claim_file(self, name: str, worker: str, lease_s: float) -> bool: ...
    def heartbeat(self, names: Sequence[str], worker: str) -> None: ...
    def finish_claim(self, name: str, worker: str) -> None: ...
    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool: ...
    def release_lease(self, name: str, holder: str) -> None: ...


class RunFiles(Protocol):
    """Per-run files derived from the vectors and the history (prediction state, map layout, story cohesion), and
    what the serving processes publish about themselves. A file that is missing or unreadable reads as None."""

    def save_prediction_state(self, run_id: int, state: PredictionState) -> None: ...
    def load_prediction_state(self, run_id: int) -> PredictionState | None: ...
    def save_layout(self, run_id: int, doc_ids: np.ndarray, xy: np.ndarray) -> None: ...
    def load_layout(self, run_id: int) -> tuple[np.ndarray, np.ndarray] | None: ...
    def save_story_cohesion(self, run_id: int, story_ids: np.ndarray, cohesion: np.ndarray) -> None: ...
    def load_story_cohesion(self, run_id: int) -> tuple[np.ndarray, np.ndarray] | None: ...
    def serving_statuses(self) -> list[dict]:
        """What each serving process of this home last published (one; on a shared home, one per worker)."""


class Notifier(Protocol):
    def tell(self, recorded: list[dict], feed: list[dict]) -> None:
        """Tell people about the alerts just recorded (a log line each, the webhook) and rewrite the feed of the
        latest ones (`feed`)."""


class ReportPages(Protocol):
    def has_page(self, run_id: int) -> bool:
        """Whether the run's page was written."""

    def publish(self, reads: StoryReads, run: Run, layout: tuple[np.ndarray, np.ndarray] | None, done_runs: list[Run], *,
                is_latest: bool, out: Path | None = None, standalone: bool = False, held: HeldLabels | None = None) -> Path:
        """Render a run's page from the history's reads and its layout, write it (and latest.html, index.html); its path.
        held: the story labels of runs the caller holds in memory (StoryReads.lineage)."""


class App(Protocol):
    """What a use case is given: the settings and the ports, wired by bootstrap.App (the one implementation)."""

    settings: Settings
    ledger: DocumentLedger
    runs: RunHistory
    stories: StoryReads
    alerts: AlertHistory
    coordination: Coordination
    run_files: RunFiles
    notifier: Notifier
    pages: ReportPages
    failpoints: Failpoints
    write_lock: AbstractContextManager  # one writer at a time in this process (files, rebuilds, alerts between them)

    @property
    def embedder(self) -> Embedder:
        """The model, loaded on first use."""

    def open_store(self) -> VectorStore:
        """The store to write to and search (the neighbour index in front of it where one is kept), opened on first use."""

    def open_neighbours(self) -> NeighbourIndex | None:
        """The kept kNN graph, opening the store; None when none is kept (vector_cache = false)."""

    def set_store_aside(self) -> bool:
        """Let the store's in-process memory go until its next use."""

    def search_index(self, serving: bool = False) -> SearchIndex:
        """What a query may search (LookupError where nothing is readable beside a running serve)."""

    def prediction_state(self, run_id: int) -> PredictionState | None: ...

    def forget_prediction_state(self) -> None: ...
