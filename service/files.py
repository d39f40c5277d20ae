"""Files we write: whole or not at all (temporary name, fsync, rename), and CSV cells a spreadsheet cannot run."""

from __future__ import annotations

import csv
import errno
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterable

# names of files still being written: the inbox watcher skips them, and a hand-over never makes one
TEMP_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", ".partial")
# OWASP's CSV injection rule: a cell starting with one of these is read as a formula by spreadsheets
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def atomic_write(target: Path, data: str | bytes) -> None:
    """Readers see the old file or the new one, never half of it; a crash leaves at most a stray .tmp."""
    with atomic_open(target, binary=True) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


@contextmanager
def atomic_open(target: Path, binary: bool = False) -> Iterator[IO]:
    """atomic_write for a file written piece by piece (a CSV export): text is UTF-8 with newlines as written.
    If the block fails, the temporary goes and the old file stays."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # two writers never share a temporary
    try:
        with (tmp.open("wb") if binary else tmp.open("w", encoding="utf-8", newline="")) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)


def neutralise(cell: Any) -> Any:
    """A text cell that would start a formula gets a leading apostrophe; numbers (-1, +3.5) stay numbers."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START) and not _NUMBER.match(cell):
        return "'" + cell
    return cell


class SafeCsvWriter:
    """csv.writer whose every text cell passes through `neutralise`."""

    def __init__(self, fh: IO[str]):
        self._writer = csv.writer(fh)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(c) for c in row])


# the last bytes of a file whose last row is whole: a line end in UTF-8/latin-1, UTF-16 (LE, BE) or UTF-32 (LE, BE)
LINE_ENDS = (b"\n", b"\r", b"\n\x00", b"\r\x00", b"\x00\n", b"\x00\r", b"\n\x00\x00\x00", b"\x00\x00\x00\n")


def ends_with_line_end(path: Path) -> bool:
    """A writer that is cut off, or still writing, usually stops mid-row: the file then ends without a line end."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4))
            tail = fh.read()
    except OSError:
        return False
    return size > 0 and tail.endswith(LINE_ENDS)


def writer_holds_open(path: Path) -> bool | None:
    """True when some process has the file open for writing, False when none has, None when we cannot tell.

    Linux: a read lease (F_SETLEASE F_RDLCK) is refused with EAGAIN exactly while the file is open for writing
    anywhere; it is dropped again at once. Elsewhere, or on a file we do not own (the kernel refuses the lease),
    the stability wait alone decides.
    """
    import fcntl

    set_lease = getattr(fcntl, "F_SETLEASE", None)
    if set_lease is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, set_lease, fcntl.F_RDLCK)
    except OSError as exc:
        return True if exc.errno in (errno.EAGAIN, errno.EBUSY) else None
    else:
        fcntl.fcntl(fd, set_lease, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)
