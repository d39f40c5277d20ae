"""Whose fault is it: the file's, or our environment's?

A file's own content (no title column, broken quoting) is permanent: the file goes to failed/
with its reason. Our environment failing (SQLite busy or locked past its timeout, the vector
store unreachable, a full disk, permission denied on our own folders, an interrupted call) says
nothing about the file: it stays in the inbox and is retried with exponential backoff.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

from .config import Settings

# OSError numbers that describe the machine, not the file
_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
    errno.EINTR: "interrupted system call",
    errno.EAGAIN: "resource temporarily unavailable",
    errno.EBUSY: "device or resource busy",
    errno.ENOMEM: "out of memory",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
}


class StoreUnavailable(Exception):
    """The vector store failed or could not be reached: what a store adapter raises for its library's errors
    (adapters/milvus.py turns pymilvus's and gRPC's into it), so no library's exceptions are known here."""


def transient_cause(exc: BaseException) -> str | None:
    """A one-line cause when `exc` is our environment failing (retry the file later), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = _own_cause(exc)
        if cause:
            return cause
        exc = exc.__cause__ or exc.__context__
    return None


def _own_cause(exc: BaseException) -> str | None:
    if isinstance(exc, StoreUnavailable):
        return f"vector store unavailable: {exc}".splitlines()[0]
    if isinstance(exc, sqlite3.OperationalError):
        return f"SQLite: {exc}"
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError
    except ImportError:  # pragma: no cover
        DBAPIError = OperationalError = ()  # type: ignore[assignment]
    if isinstance(exc, OperationalError):
        return f"database: {str(exc.orig) if getattr(exc, 'orig', None) else exc}".splitlines()[0]
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return f"database connection lost: {exc.orig}".splitlines()[0]
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{_ENVIRONMENT_ERRNOS[exc.errno]}{where}"
    return None


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: first, 2×first, 4×first … capped at `cap` seconds."""

    first_s: float = Settings.retry_first_s
    cap_s: float = Settings.retry_max_s

    def delay(self, attempt: int) -> float:
        return float(min(self.cap_s, self.first_s * (2 ** max(0, attempt - 1))))


class BrokenStore(Exception):
    """A store we cannot use as it is (a database that is not one, a Milvus Lite store that is a plain file, a home
    we cannot write): the message is one line naming the file and what to do; the command exits with status 2 and
    has changed nothing. Retrying cannot help, so it is no transient fault."""
