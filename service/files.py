"""Files we write: whole or not at all (temporary name, fsync, rename), and CSV cells a spreadsheet cannot run."""

from __future__ import annotations

import csv
import os
import re
import threading
from pathlib import Path
from typing import IO, Any, Iterable

# OWASP's CSV injection rule: a cell starting with one of these is read as a formula by spreadsheets
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def atomic_write(target: Path, data: str | bytes) -> None:
    """Readers see the old file or the new one, never half of it; a crash leaves at most a stray .tmp."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # two writers never share a temporary
    with tmp.open("wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
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
