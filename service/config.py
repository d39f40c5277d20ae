"""Settings declared once: every knob with its default and help text, built at start and passed in.

Sources, later wins: defaults < ``HOME/newsclust.toml`` < ``NEWSCLUST_*`` environment variables
< explicit overrides (CLI). Nothing below reads the environment after :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(Path("newsclust-home"), "Folder holding inbox/, processed/, failed/, reports/, the SQLite file and the Milvus Lite file.")
    milvus_uri: str = _setting("", "Milvus URI: a Lite file path, http://host:19530 or a Zilliz Cloud URI. Empty: HOME/milvus.db.")
    milvus_token: str = _setting("", "Token for a Milvus server or Zilliz Cloud (user:password or API key).")
    collection: str = _setting("headlines", "Milvus collection name. Its dimension follows the embedder: switching embedders needs a new collection.")
    embedder: str = _setting("minilm", "Embedding model: 'minilm' (bundled all-MiniLM-L6-v2) or 'bge-m3' (FlagEmbedding, needs local weights).")
    embedder_path: str = _setting("", "Local folder or HF-cache model id for the embedder; empty uses the bundled MiniLM or 'BAAI/bge-m3'.")
    embed_batch_size: int = _setting(64, "Documents per embedding batch.")
    max_tokens: int = _setting(256, "Word pieces the embedder reads per text (all-MiniLM-L6-v2's config says 256, it was trained on 128; BGE-M3 reads up to 8192). Lower is faster on long descriptions.")
    embed_precision: str = _setting("auto", "Embedding arithmetic: 'auto' (bf16 where the CPU has native bf16, AVX512-BF16 or AMX, else fp32), 'fp32', 'bf16' (vectors within 1e-4 cosine of fp32) or 'int8' (MiniLM only: ~2x faster, coarser clusters; README, Benchmarks).")
    max_text_chars: int = _setting(2000, "Text longer than this is cut before embedding (the full text is kept in SQLite).")
    vector_cache: bool = _setting(True, "Keep a copy of the vectors in HOME/state/ so a rebuild reads them at disk speed instead of through Milvus's query iterator; checked against Milvus's count and refilled from it when they differ.")
    knn_k: int = _setting(15, "Neighbours per document in the kNN graph.")
    recipe: str = _setting("auto", "Clustering recipe: 'umap' (UMAP to a few dimensions from the kNN graph, then HDBSCAN; best on real news, minutes above ~50k), 'graph' (HDBSCAN on the raw kNN graph; seconds at 1M) or 'auto' (umap up to umap_max_documents, graph above).")
    umap_max_documents: int = _setting(50000, "With recipe 'auto': the most documents the umap recipe clusters; more use the graph recipe.")
    umap_dims: int = _setting(5, "Dimensions of the UMAP space the 'umap' recipe clusters in.")
    min_cluster_size: int = _setting(0, "HDBSCAN min_cluster_size; 0 scales it with the number of documents (sqrt(n)/2).")
    min_samples: int = _setting(5, "HDBSCAN min_samples (core distance neighbour rank).")
    cluster_selection: str = _setting("eom", "HDBSCAN cluster selection: 'eom' or 'leaf' (finer, more noise).")
    stabilize: bool = _setting(True, "Hysteresis: undo splits and merges that only reshuffle documents the last run already clustered (new documents still split and merge stories).")
    hold_margin: float = _setting(0.35, "Hysteresis: a document the last run clustered leaves its story for another (in a flow under 30% of its story) only when it is closer to the other cluster's centre by this much cosine. Tuned on all-MiniLM-L6-v2; models with a narrower cosine range (BGE-M3) want less.")
    assign_neighbours: int = _setting(20, "Fitted neighbours consulted when placing an arrival between rebuilds.")
    assign_min_vote: float = _setting(0.5, "Placing an arrival: the share of its fitted neighbours' weight (1/mutual reachability; noise votes too) its cluster must hold, else it waits for the rebuild as noise. 0: the nearest clustered neighbour alone decides (more placed at once, more of them moved by the rebuild).")
    match_min_jaccard: float = _setting(0.2, "Smallest member overlap (Jaccard) for a new cluster to inherit an old cluster's id.")
    window_days: float = _setting(0.0, "Cluster only documents of the last N days (0: all). Older ones keep their final assignment in history.")
    window_by: str = _setting("published", "Which time the window uses: 'published' (falls back to ingested where unknown) or 'ingested'.")
    rebuild_interval_s: int = _setting(600, "Seconds between scheduled rebuilds in `serve`.")
    rebuild_min_pending: int = _setting(1, "A scheduled rebuild is skipped when fewer arrivals than this came since the last one.")
    noise_pool_trigger: int = _setting(200, "Arrivals left as noise since the last rebuild that trigger an early rebuild.")
    stable_wait_s: float = _setting(1.0, "A dropped file is taken once its size and mtime held still this long.")
    poll_inbox: bool = _setting(False, "Use a polling observer (network or container mounts where file events don't arrive).")
    report_max_points: int = _setting(50000, "Most points drawn on the report map; the rest are sampled out, and the page says so.")
    failpoint: str = _setting("", "Tests only: PHASE[:N] makes the process SIGKILL itself the Nth time it reaches PHASE (parse, embed, milvus, sqlite, move, rebuild).")
    seed: int = _setting(42, "Random seed for layout and any sampling: same data, same seed, same output.")

    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def processed_dir(self) -> Path:
        return self.home / "processed"

    @property
    def failed_dir(self) -> Path:
        return self.home / "failed"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def sqlite_path(self) -> Path:
        return self.home / "newsclust.sqlite"

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str(self.home / "milvus.db")

    def ensure_dirs(self) -> None:
        for d in (self.home, self.inbox, self.processed_dir, self.failed_dir, self.reports_dir, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)


def describe_settings() -> list[tuple[str, str, str]]:
    """(name, default, help) for every setting, for `--help-settings` and the README check."""
    return [(f.name, str(f.default), f.metadata["help"]) for f in fields(Settings)]


def _coerce(name: str, raw: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if kind in ("Path",):
        return Path(raw)
    if kind == "bool":
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    return str(raw)


def load_settings(home: Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(home or env.get("NEWSCLUST_HOME") or "newsclust-home")
    values: dict[str, Any] = {"home": home}
    toml_path = home / "newsclust.toml"
    if toml_path.exists():
        with toml_path.open("rb") as fh:
            for k, v in tomllib.load(fh).items():
                values[k] = _coerce(k, v)
    for f in fields(Settings):
        key = "NEWSCLUST_" + f.name.upper()
        if f.name != "home" and key in env:
            values[f.name] = _coerce(f.name, env[key])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(Settings(), **values)
