"""Plain data passed between the core, the use cases and the adapters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

NOISE = -1


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
