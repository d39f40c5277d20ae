"""Settings declared once: every knob with its default and help text, built at start and passed in.

Sources, later wins: defaults < ``HOME/newsclust.toml`` < ``NEWSCLUST_*`` environment variables
< explicit overrides (CLI). Nothing below reads the environment after :func:`load_settings`.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .clustering import defaults as core


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(Path("newsclust-home"), "Folder holding inbox/, processed/, failed/, reports/, the SQLite file and the Milvus Lite file.")
    database_url: str = _setting("", "History database: empty is the SQLite file HOME/newsclust.sqlite; postgresql+psycopg://user:password@host/db for a PostgreSQL server (same schema, migrations and views).")
    worker_name: str = _setting("", "This process's name among several workers on one home (claims and leases); empty: the host name. Two workers on one host need different names.")
    claim_lease_s: float = _setting(60.0, "Several workers: a claim on an inbox file (or the rebuild lease) whose holder stopped renewing it for this long is taken over.")
    milvus_uri: str = _setting("", "Milvus URI: a Lite file path, http://host:19530 or a Zilliz Cloud URI. Empty: HOME/milvus.db.")
    milvus_token: str = _setting("", "Token for a Milvus server or Zilliz Cloud (user:password or API key).")
    collection: str = _setting("headlines", "Milvus collection name. Its dimension follows the embedder: switching embedders needs a new collection.")
    embedder: str = _setting("minilm", "Embedding model: 'minilm' (bundled all-MiniLM-L6-v2) or 'bge-m3' (FlagEmbedding, needs local weights).")
    embedder_path: str = _setting("", "Local folder or HF-cache model id for the embedder; empty uses the bundled MiniLM or 'BAAI/bge-m3'.")
    embed_batch_size: int = _setting(0, "Documents per embedding batch; 0: the device's own (64 on the CPU, 1024 on a GPU).")
    embed_device: str = _setting("auto", "Where the embedder runs: 'auto' (CUDA where torch sees a GPU, else the CPU), 'cpu' or 'cuda'. On a GPU 'auto' precision is fp32 (MiniLM on an H200: 14,500 headlines/s at batch 1024; fp16 was slower).")
    max_tokens: int = _setting(256, "Word pieces the embedder reads per text (all-MiniLM-L6-v2's config says 256, it was trained on 128; BGE-M3 reads up to 8192). Lower is faster on long descriptions.")
    embed_precision: str = _setting("auto", "Embedding arithmetic: 'auto' (bf16 where the CPU has native bf16, AVX512-BF16 or AMX, else fp32), 'fp32', 'bf16' (vectors within 1e-4 cosine of fp32) or 'int8' (MiniLM only: ~2x faster, coarser clusters; README, Benchmarks).")
    max_text_chars: int = _setting(2000, "Text longer than this is cut before embedding (the full text is kept in SQLite).")
    vector_cache: bool = _setting(True, "Keep a copy of the vectors in HOME/state/ so a rebuild reads them at disk speed instead of through Milvus's query iterator; checked against Milvus's count and refilled from it when they differ.")
    knn_k: int = _setting(15, "Neighbours per document in the kNN graph.")
    story_min_size: int = _setting(core.STORY_MIN_SIZE, "Fewest headlines that make a story. Fixed, not scaled with the corpus: five headlines about one event are a story at 1k and at 1M documents.")
    topic_min_size: int = _setting(core.TOPIC_MIN_SIZE, "Fewest documents of the coarse HDBSCAN cut that keeps stories from swallowing a dense group of stories (topics themselves are communities of stories); 0 scales it with the number of documents (sqrt(n)/2).")
    min_samples: int = _setting(core.MIN_SAMPLES, "HDBSCAN min_samples (core distance neighbour rank).")
    stabilize: bool = _setting(True, "Hysteresis: undo splits and merges that only reshuffle documents the last run already clustered (new documents still split and merge stories).")
    hold_margin: float = _setting(core.HOLD_MARGIN, "Hysteresis: a document the last run clustered leaves its story for another (in a flow under 30% of its story) only when it is closer to the other cluster's centre by this much cosine. Tuned on all-MiniLM-L6-v2; models with a narrower cosine range (BGE-M3) want less.")
    assign_neighbours: int = _setting(20, "Fitted neighbours consulted when placing an arrival between rebuilds.")
    assign_min_vote: float = _setting(0.5, "Placing an arrival: the share of its fitted neighbours' weight (1/mutual reachability; noise votes too) its cluster must hold, else it waits for the rebuild as noise. 0: the nearest clustered neighbour alone decides (more placed at once, more of them moved by the rebuild).")
    match_min_jaccard: float = _setting(core.MATCH_MIN_JACCARD, "Smallest member overlap (Jaccard) for a new cluster to inherit an old cluster's id.")
    window_days: float = _setting(0.0, "Cluster only documents of the last N days (0: all). Older ones keep their final assignment in history.")
    window_by: str = _setting("published", "Which time the window uses: 'published' (falls back to ingested where unknown) or 'ingested'.")
    rebuild_interval_s: int = _setting(600, "Seconds between scheduled rebuilds in `serve`.")
    rebuild_min_gap_s: float = _setting(60.0, "Rebuilds pulled forward by arrivals (a new story in the noise pool, a full pool) wait at least this long after the last rebuild; a user's `newsclust rebuild` does not wait.")
    rebuild_min_pending: int = _setting(1, "A scheduled rebuild is skipped when fewer arrivals than this came since the last one.")
    noise_pool_trigger: int = _setting(200, "Arrivals left as noise since the last rebuild that trigger an early rebuild.")
    db_busy_timeout_s: float = _setting(30.0, "Seconds a database write waits for another program's lock (a backup, a long query) before the file is retried later with backoff.")
    retry_first_s: float = _setting(2.0, "First wait before a file (or a rebuild) that our environment failed is tried again; doubles on each try, up to retry_max_s.")
    retry_max_s: float = _setting(300.0, "Longest wait between tries of a file or a rebuild that our environment keeps failing.")
    alert_new_min_size: int = _setting(core.ALERT_NEW_MIN_SIZE, "A story born in a rebuild (not the first) with at least this many headlines raises a 'new story' alert.")
    alert_max_per_rebuild: int = _setting(10, "Most alerts one rebuild raises: the largest stories are told, the rest held back (counted in the alerts' details and the log).")
    surge_window_h: float = _setting(core.SURGE_WINDOW_H, "Surge alerts compare a story's headlines in the last this-many hours of news time with its usual pace.")
    surge_factor: float = _setting(core.SURGE_FACTOR, "A story surges when its last window holds this many times its own usual pace and the stream's typical story's.")
    surge_min_headlines: int = _setting(core.SURGE_MIN_HEADLINES, "Fewest headlines in the last window for a surge alert.")
    webhook_url: str = _setting("", "POST each alert as JSON here (timeout, retries with backoff, from a background thread). Empty: no webhook.")
    stable_wait_s: float = _setting(1.0, "A dropped file is taken once its size and mtime held still this long.")
    settle_s: float = _setting(10.0, "A file written in place in the inbox (not renamed into it) stays there until it held still this long: rows appended meanwhile are taken too, and a last row without a line end waits this long for the rest.")
    poll_inbox: bool = _setting(False, "Use a polling observer (network or container mounts where file events don't arrive).")
    api: bool = _setting(True, "`serve` answers queries (search, story, topic, status, alerts, the report pages) over a read-only HTTP JSON API; `newsclust status --json` gives its api_url, and the CLI's queries use it while serve runs.")
    api_host: str = _setting("127.0.0.1", "Address the query API listens on. Anything but a loopback address needs api_token.")
    api_port: int = _setting(0, "Port of the query API; 0 takes a free one at start (written to HOME/state/api.json and shown by `status --json`).")
    api_token: str = _setting("", "When set, the query API answers only requests with `Authorization: Bearer TOKEN`; required for a non-loopback api_host. The CLI sends it from the same setting.")
    report_keep_runs: int = _setting(30, "Run pages kept in HOME/reports/ (run-N.html); older ones are deleted and drop out of index.html. 0 keeps all.")
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
    def shared(self) -> bool:
        """Several processes may write this home: PostgreSQL for history and a Milvus server for vectors (neither
        allows only one writer). With SQLite or a Milvus Lite file, one process owns the home (HOME/writer.lock)."""
        return self.database_url.startswith("postgresql") and is_server_uri(self.resolved_milvus_uri)

    @property
    def resolved_worker_name(self) -> str:
        import socket

        return self.worker_name or socket.gethostname()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path}"

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str(self.home / "milvus.db")

    def ensure_dirs(self) -> None:
        for d in (self.home, self.inbox, self.processed_dir, self.failed_dir, self.reports_dir, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)


def is_server_uri(uri: str) -> bool:
    """The one rule for "is the vector store a server?": one reached by URL (Milvus server, Zilliz Cloud), which several
    processes may open; anything else is a Milvus Lite file run inside the one process that opens it."""
    return uri.startswith(("http://", "https://", "tcp://"))


def describe_settings() -> list[tuple[str, str, str]]:
    """(name, default, help) for every setting, for `--help-settings` and the README check."""
    return [(f.name, str(f.default), f.metadata["help"]) for f in fields(Settings)]


_IGNORED = object()


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the setting and where it came from."""


# settings that take one of a few words; anything else is refused when the settings load, not at the first rebuild
CHOICES = {
    "embedder": ("minilm", "bge-m3"),  # adapters/embedders.py makes each of these, by these names
    "embed_precision": ("auto", "fp32", "bf16", "int8"),
    "embed_device": ("auto", "cpu", "cuda"),
    "window_by": ("published", "ingested"),
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# numbers that must be positive (the rest must not be negative)
_POSITIVE = {"max_tokens", "max_text_chars", "knn_k", "min_samples", "assign_neighbours",
             "rebuild_interval_s", "report_max_points", "db_busy_timeout_s", "retry_first_s", "retry_max_s", "story_min_size", "surge_window_h",
             "surge_factor", "surge_min_headlines", "alert_new_min_size", "alert_max_per_rebuild", "claim_lease_s"}
# settings of earlier versions: accepted with a warning and ignored, so an old newsclust.toml still loads
RETIRED = {
    "recipe": "stories and topics now come from one recipe at every size",
    "umap_max_documents": "the rebuild no longer uses UMAP",
    "umap_dims": "the rebuild no longer uses UMAP",
    "cluster_selection": "stories and topics are two fixed selections of one tree",
    "min_cluster_size": "see story_min_size and topic_min_size",
}


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name in RETIRED:
        logging.getLogger("newsclust.config").warning("%s: setting %r is ignored: %s", source, name, RETIRED[name])
        return _IGNORED
    kinds = {f.name: f.type for f in fields(Settings)}
    if name not in kinds:
        close = difflib.get_close_matches(name, kinds, n=1)
        raise SettingsError(f"{source}: unknown setting {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                            + "; `newsclust --help-settings` lists them")
    kind = kinds[name]
    try:
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word not in _TRUE + _FALSE:
                raise ValueError(f"{raw!r} is not a yes/no value (true/false, 1/0, yes/no, on/off)")
            return word in _TRUE
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(f"{raw!r} is not a whole number")
            value: Any = int(raw)
        elif kind == "float":
            value = float(raw)
        else:
            value = str(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{source}: {name} = {raw!r}: {exc}") from None
    if name in CHOICES and value not in CHOICES[name]:
        raise SettingsError(f"{source}: {name} = {value!r}: one of {', '.join(CHOICES[name])}")
    if kind in ("int", "float") and (value <= 0 if name in _POSITIVE else value < 0):
        raise SettingsError(f"{source}: {name} = {value!r}: must be {'positive' if name in _POSITIVE else 'zero or more'}")
    return value


def load_settings(home: Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(home or env.get("NEWSCLUST_HOME") or "newsclust-home")
    values: dict[str, Any] = {"home": home}
    toml_path = home / "newsclust.toml"
    if toml_path.exists():
        try:
            with toml_path.open("rb") as fh:
                table = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{toml_path}: unreadable: {exc}") from None
        for k, v in table.items():
            values[k] = _coerce(k, v, str(toml_path))
    for f in fields(Settings):
        key = "NEWSCLUST_" + f.name.upper()
        if f.name != "home" and key in env:
            values[f.name] = _coerce(f.name, env[key], f"environment variable {key}")
    for k, v in overrides.items():
        if v is not None:
            values[k] = _coerce(k, v, "argument") if k != "home" else Path(v)
    return dataclasses.replace(Settings(), **{k: v for k, v in values.items() if v is not _IGNORED})
