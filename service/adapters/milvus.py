"""VectorStore on pymilvus MilvusClient: one code path for a Lite file, a server and Zilliz Cloud.

Traps handled here: COSINE returns a similarity, so it is turned into the
distance the clustering core uses; search always names output_fields so Lite does not
ship every vector back; requests stay within a server's limits (nq, topK, 64 MB);
collections are Strong-consistency so a read right after a write sees it; a catch-up's reads, right after a Strong
count, may ask for what the server holds now instead (strong=False): a Strong read waits for the server's next time
tick, about 0.2 s a request on the embedded server.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient

from ..domain import cosine_to_distance
from ..config import is_server_uri
from ..faults import BrokenStore, StoreUnavailable
from .lite_repair import drop_torn_index_files

MAX_NQ = 16_384
MAX_TOPK = 16_384
REQUEST_BYTES = 48 << 20  # under the server's 64 MB per request


def quiet_library_logs() -> None:
    """Mute what pymilvus and grpc log on every Milvus Lite read (process-wide loggers, so the caller decides:
    bootstrap does, before it opens a store)."""
    # the query iterator warns on every Lite read that it falls back to client-side timestamps: expected, not news
    logging.getLogger("pymilvus.client.iterator.query_iterator").setLevel(logging.ERROR)
    # ...after Milvus Lite's in-process server has refused the timestamp call with a logged traceback
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)


def _library_fault(exc: BaseException) -> bool:
    """pymilvus's errors and the gRPC channel's under it: the store failing, never the caller's data."""
    from pymilvus.exceptions import MilvusException

    return isinstance(exc, MilvusException) or type(exc).__module__.startswith("grpc")


def _faults_as_ours(cls):
    """The port speaks no library's exceptions: every public method's pymilvus or gRPC error is raised again as
    faults.StoreUnavailable (a transient fault: the file is retried, the rebuild backs off), the library's as its cause."""

    def wrap(fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as exc:
                    if _library_fault(exc):
                        raise StoreUnavailable(str(getattr(exc, "message", None) or exc).splitlines()[0]) from exc
                    raise
            return gen

        @functools.wraps(fn)
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if _library_fault(exc):
                    raise StoreUnavailable(str(getattr(exc, "message", None) or exc).splitlines()[0]) from exc
                raise
        return call

    for name, fn in list(vars(cls).items()):
        if inspect.isfunction(fn) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, wrap(fn))
    return cls


LITE_GRPC_OPTIONS = {"grpc.keepalive_time_ms": 2**31 - 1, "grpc.keepalive_permit_without_calls": False}


@_faults_as_ours
class MilvusStore:
    def __init__(self, uri: str, collection: str, dim: int, token: str = ""):
        self.uri = uri
        self.is_server = is_server_uri(uri)  # else Milvus Lite, an engine inside this process
        self.collection = collection
        self.dim = dim
        # a Lite file's client is its own connection, closed for good by close(): a shared one stays registered in
        # pymilvus after close, and a rebuild closes and reopens Lite (App.set_store_aside) many times a week
        # ...and no keepalive pings: pymilvus pings every 10 s, Lite's in-process gRPC server allows one per 5 min and
        # answers `GOAWAY ... too_many_pings` within a minute of idling (an ERROR line in serve's log that reads like a
        # failure; the channel reconnects). A loopback channel in this process has nothing to keep alive.
        extra = {"dedicated": True, "grpc_options": LITE_GRPC_OPTIONS} if is_lite(uri) else {}
        self.client = MilvusClient(uri=uri, token=token, **extra) if token else MilvusClient(uri=uri, **extra)
        self._ensure_collection()

    def _ensure_collection(self) -> None:
        c = self.client
        if c.has_collection(self.collection):
            existing = self._collection_dim()
            if existing != self.dim:
                raise ValueError(
                    f"Milvus collection {self.collection!r} holds {existing}-d vectors but the embedder makes {self.dim}-d: "
                    "embedders cannot be mixed in one collection; set a new `collection` (and home) for this embedder"
                )
        else:
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field("published_ts", DataType.INT64)
            schema.add_field("ingested_ts", DataType.INT64)
            index = c.prepare_index_params()
            index.add_index(field_name="vector", index_type="AUTOINDEX" if self.is_server else "FLAT", metric_type="COSINE")
            c.create_collection(self.collection, schema=schema, index_params=index, consistency_level="Strong")
        self._load_collection()

    def _load_collection(self) -> None:
        """Load the collection; a Lite file whose index file a kill tore (Lite writes them in place) is repaired:
        the unreadable index files are dropped, one warning each, and the load is tried once more, which builds
        them again from the Parquet data (lite_repair). Anything else, or a second failure, is raised as it came."""
        try:
            self.client.load_collection(self.collection)
        except Exception as exc:
            if not (is_lite(self.uri) and _library_fault(exc)):
                raise
            dropped = drop_torn_index_files(Path(self.uri) / "collections" / self.collection)  # Lite's default database
            if not dropped:
                raise
            for path, why in dropped:
                logging.getLogger("newsclust").warning(
                    "Milvus Lite: dropped the index file %s, which cannot be read back (%s; a kill while it was written "
                    "leaves it cut short); Lite builds it again from its data", path, why)
            self.client.load_collection(self.collection)

    def _collection_dim(self) -> int:
        info = self.client.describe_collection(self.collection)
        for f in info["fields"]:
            if f["name"] == "vector":
                return int(f["params"]["dim"])
        raise ValueError(f"collection {self.collection!r} has no 'vector' field")

    def _rows_per_request(self) -> int:
        return max(1, min(MAX_NQ, REQUEST_BYTES // (self.dim * 4 + 64)))

    def upsert(self, ids: np.ndarray, vectors: np.ndarray, published_ts: np.ndarray, ingested_ts: np.ndarray) -> None:
        """Upsert, not insert: a retry after a crash overwrites the same primary keys instead of doubling them."""
        step = self._rows_per_request()
        for s in range(0, len(ids), step):
            rows = [
                {"id": int(i), "vector": v.tolist(), "published_ts": int(p), "ingested_ts": int(t)}
                for i, v, p, t in zip(ids[s : s + step], vectors[s : s + step], published_ts[s : s + step], ingested_ts[s : s + step])
            ]
            self.client.upsert(self.collection, rows)

    def count(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """Vectors of the given ids, in their order (ids not stored come back as zero rows)."""
        out = np.zeros((len(ids), self.dim), np.float32)
        where = {int(i): r for r, i in enumerate(ids)}
        step = 1000
        for s in range(0, len(ids), step):
            chunk = [int(i) for i in ids[s : s + step]]
            for row in self.client.query(self.collection, filter=f"id in {chunk}", output_fields=["id", "vector"], limit=len(chunk)):
                out[where[int(row["id"])]] = row["vector"]
        return out

    def iter_rows(self, batch_size: int = 5000, since_ts: int | None = None, by: str = "published",
                  without: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  strong: bool = True) -> Iterator[tuple[np.ndarray, ...]]:
        """(ids, vectors, published_ts, ingested_ts) in batches, in the store's order. without(ids, ingested_ts): a mask
        of the rows the caller holds already; they are left out and their vectors never read (a catch-up's overlap).
        strong=False: what the server holds now, without waiting for writes in flight (module docstring)."""
        batch_size = min(batch_size, self._rows_per_request())
        fields = ["id", "vector", "published_ts", "ingested_ts"]
        if since_ts is not None and without is not None:
            yield from self._rows_not_held(batch_size, since_ts, by, without, strong)
            return
        for rows in self._query_batches(_window_filter(since_ts, by), fields, batch_size, one_first=since_ts is not None, strong=strong):
            yield _columns(rows)

    def _query_batches(self, flt: str, fields: list[str], batch_size: int, one_first: bool = True,
                       strong: bool = True) -> Iterator[list[dict]]:
        """Rows matching flt, a request's worth at a time. one_first: a window or a catch-up often holds fewer rows
        than one request carries: one query instead of the iterator's several round trips (a rebuild leader catching
        up on a few hundred rows); the iterator only when they fill it."""
        if one_first:
            rows = self.client.query(self.collection, filter=flt, output_fields=fields, limit=batch_size, **_consistency(strong))
            if len(rows) < batch_size:
                if rows:
                    yield rows
                return
        it = self.client.query_iterator(self.collection, batch_size=batch_size, filter=flt, output_fields=fields, **_consistency(strong))
        try:
            while rows := it.next():
                yield rows
        finally:
            it.close()

    def _rows_not_held(self, batch_size: int, since_ts: int, by: str, without: Callable[[np.ndarray, np.ndarray], np.ndarray],
                       strong: bool):
        """iter_rows's rows the caller lacks: the window's ids first (no vectors), then the full rows of the ids it
        lacks. A rebuild leader's catch-up read every row of its overlap again; decoding their vectors took 3.1 s of
        its 8.9 s over 4 rounds of 600 rows on the embedded server (the gRPC query 3.8 s), for rows it held."""
        rows = [r for part in self._query_batches(_window_filter(since_ts, by), ["id", "ingested_ts"], MAX_NQ, strong=strong) for r in part]
        ids = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
        stamped = np.fromiter((r["ingested_ts"] for r in rows), dtype=np.int64, count=len(rows))
        lacking = ids[~np.asarray(without(ids, stamped), bool)] if len(ids) else ids
        fields = ["id", "vector", "published_ts", "ingested_ts"]
        for s in range(0, len(lacking), min(batch_size, 1000)):
            chunk = [int(i) for i in lacking[s : s + min(batch_size, 1000)]]
            rows = self.client.query(self.collection, filter=f"id in {chunk}", output_fields=fields, limit=len(chunk), **_consistency(strong))
            if rows:
                yield _columns(rows)

    def all_vectors(self, since_ts: int | None = None, by: str = "published") -> tuple[np.ndarray, np.ndarray]:
        """Every (id, vector) (of the time window, if given), sorted by id so the same data always yields the same order."""
        ids, vecs = [], []
        for i, v, _, _ in self.iter_rows(since_ts=since_ts, by=by):
            ids.append(i)
            vecs.append(v)
        if not ids:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        ids_a, vecs_a = np.concatenate(ids), np.concatenate(vecs)
        order = np.argsort(ids_a, kind="stable")
        return ids_a[order], vecs_a[order]

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        m = len(vectors)
        k = max(1, min(k, MAX_TOPK))
        out_ids = np.full((m, k), -1, np.int64)
        out_dist = np.full((m, k), np.inf, np.float32)
        step = max(1, min(self._rows_per_request(), MAX_NQ // 1))
        for s in range(0, m, step):
            batch = vectors[s : s + step]
            res = self.client.search(
                self.collection,
                data=[v.tolist() for v in batch],
                limit=k,
                output_fields=["id"],
                search_params={"metric_type": "COSINE"},
            )
            for row, hits in enumerate(res):
                for col, hit in enumerate(hits[:k]):
                    out_ids[s + row, col] = int(hit["id"])
                    out_dist[s + row, col] = float(cosine_to_distance(np.float32(hit["distance"])))
        return out_ids, out_dist

    def release(self) -> bool:
        """Close; for Milvus Lite also stop its in-process server, handing back every loaded vector (release_local).
        A server holds nothing in this process: it stays open (False)."""
        if self.is_server:
            return False
        self.close()
        release_local(self.uri)
        return True

    def close(self) -> None:
        self.client.close()


def _consistency(strong: bool) -> dict:
    """A read's consistency: the collection's own (Strong: the server first applies every write sent before it), or
    Eventually (what it has applied now: on one server, at least all that an earlier Strong read saw)."""
    return {} if strong else {"consistency_level": "Eventually"}


def open_milvus(uri: str, collection: str, dim: Callable[[], int], token: str = "") -> MilvusStore:
    """The store as bootstrap opens it: the library's noisy loggers muted, a Lite store checked to be a folder before
    anything is loaded; dim() is asked after (it loads the model)."""
    quiet_library_logs()
    if is_lite(uri):
        check_lite_store(uri)
    return MilvusStore(uri, collection, dim(), token)


def check_lite_store(uri: str) -> None:
    """A Milvus Lite store is a folder; a plain file there (a copy gone wrong, a stray download) cannot be opened."""
    path = Path(uri)
    if path.exists() and not path.is_dir():
        raise BrokenStore(f"{path}: not a Milvus Lite store (a file where milvus-lite keeps a folder); nothing was changed: move "
                          "it aside and restore the folder from a backup, or start a new one (the next rebuild needs the vectors: "
                          "ingest the files in processed/ again)")


def is_lite(uri: str) -> bool:
    """pymilvus's own rule: a local file path ending in .db is Milvus Lite, run inside this process."""
    return "://" not in uri and uri.endswith(".db")


def release_local(uri: str) -> None:
    """Stop this process's Milvus Lite server for a file and hand its memory back: closing the client alone keeps
    the server, and with it every loaded segment, alive. It serves every client of that file in this process,
    so one App per Lite file per process (serve has one). Best effort: if milvus-lite's server manager is not
    as expected, the memory stays and the rebuild goes on."""
    import ctypes
    import gc

    try:
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(uri)
    except Exception as exc:  # noqa: BLE001
        logging.getLogger("newsclust").warning("Milvus Lite could not be let go during the rebuild (%s: %s)", type(exc).__name__, exc)
        return
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap back to the system (glibc); elsewhere it stays for reuse
    except (OSError, AttributeError):
        pass
    arrow = sys.modules.get("pyarrow")  # Milvus Lite 3 reads its segments through pyarrow, whose memory pool
    if arrow is not None:  # (mimalloc) keeps what was freed: 270 of the 340 MB Lite held at 100k rows stayed in the process
        try:
            arrow.default_memory_pool().release_unused()
        except AttributeError:
            pass


def _columns(rows: list[dict]) -> tuple[np.ndarray, ...]:
    """(ids, vectors, published_ts, ingested_ts) of query rows."""
    ids = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=len(rows))
    vecs = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    published = np.fromiter((r["published_ts"] for r in rows), dtype=np.int64, count=len(rows))
    ingested = np.fromiter((r["ingested_ts"] for r in rows), dtype=np.int64, count=len(rows))
    return ids, vecs, published, ingested


def _window_filter(since_ts: int | None, by: str) -> str:
    if since_ts is None:
        return ""
    if by == "ingested":
        return f"ingested_ts >= {int(since_ts)}"
    return f"(published_ts >= {int(since_ts)}) or (published_ts == 0 and ingested_ts >= {int(since_ts)})"
