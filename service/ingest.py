"""CSV bytes -> validated headlines and rejected rows, streamed in chunks so memory stays bounded."""

from __future__ import annotations

import codecs
import csv
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path

from .domain import Headline, Rejected, document_key

ALIASES = {
    "title": ("title", "headline", "name"),
    "description": ("description", "short_description", "summary", "abstract", "body"),
    "guid": ("guid", "id", "uid"),
    "url": ("url", "link"),
    "published_at": ("published_at", "date", "published", "pubdate", "datetime", "timestamp"),
}
SNIFF_BYTES = 1 << 16
READ_BYTES = 1 << 20
MAX_FIELD_CHARS = 10_000_000
# a text file holds almost no control bytes; random or binary data about one in nine
BINARY_CONTROL_SHARE = 0.05
# a published time this far past the moment we read it is a broken clock or a typo, not news
MAX_FUTURE = timedelta(days=2)
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))


def allow_long_fields() -> None:
    """Cells up to MAX_FIELD_CHARS (the csv module stops at 128 KiB). The limit is process-wide, so it is set by
    each reader of user CSV rather than as a side effect of importing this module."""
    csv.field_size_limit(MAX_FIELD_CHARS)


class BadFile(Exception):
    """The whole file cannot be read as headlines; the message says why and where."""


@dataclass
class Chunk:
    headlines: list[Headline]
    rejects: list[Rejected]


@dataclass
class CsvInfo:
    encoding: str
    columns: dict[str, str]  # our field -> the file's column name
    fieldnames: list[str]


def detect_encoding(path: Path) -> str:
    """utf-8 (or utf-8 with BOM) when every byte decodes; latin-1 otherwise, which always decodes."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
        if controls > BINARY_CONTROL_SHARE * len(head):
            raise BadFile(f"{path.name}: binary data ({controls} control or NUL bytes in the first {len(head)} bytes), not a CSV text file")
        encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
        decoder = codecs.getincrementaldecoder("utf-8")()
        fh.seek(0)
        offset = 0
        while block := fh.read(READ_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return f"latin-1 (not UTF-8 from byte {offset + exc.start})"
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1 (not UTF-8: truncated sequence at end)"
    return encoding


def _codec(encoding: str) -> str:
    return encoding.split(" ", 1)[0]


def map_columns(fieldnames: list[str], filename: str) -> dict[str, str]:
    lowered = {name.strip().lower(): name for name in fieldnames if name is not None}
    columns = {}
    for ours, aliases in ALIASES.items():
        for alias in aliases:
            if alias in lowered:
                columns[ours] = lowered[alias]
                break
    if "title" not in columns:
        hint = ""
        joined = ",".join(fieldnames)
        for sep, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if sep in joined:
                hint = f" (the header looks {name}-delimited; newsclust reads comma-separated files)"
                break
        raise BadFile(f"{filename}: line 1: no 'title' column (or alias headline/name) in header {fieldnames!r}{hint}")
    return columns


def parse_date(raw: str | None) -> datetime | None:
    """Naive UTC, or None when the text is no date we can place on the time line (out of range included)."""
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        parsed.replace(tzinfo=timezone.utc).timestamp()  # must fit the stores' unix seconds
    except (OverflowError, ValueError, OSError):
        return None
    return parsed


def visible(text: str) -> str:
    """The text without control and format characters (NUL, zero-width spaces, BOMs) at its ends or inside."""
    if text.isprintable():
        return text.strip()
    return "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")).strip()


def read_headlines(path: Path, chunk_rows: int = 5000) -> tuple[CsvInfo, Iterator[Chunk]]:
    """Open a CSV, check its header, and return the chunks of parsed rows lazily.

    File-level problems (empty, binary, no title column, broken quoting) raise BadFile;
    row-level problems (blank title) become Rejected rows and the rest goes on.
    """
    if path.stat().st_size == 0:
        raise BadFile(f"{path.name}: empty file")
    encoding = detect_encoding(path)
    allow_long_fields()
    fh = path.open("r", encoding=_codec(encoding), newline="")
    reader = csv.reader(_without_nul(fh), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise BadFile(f"{path.name}: empty file")
    except csv.Error as exc:
        fh.close()
        raise BadFile(f"{path.name}: line 1: unreadable header: {exc}") from exc
    header = [h.strip() for h in header]
    try:
        columns = map_columns(header, path.name)
    except BadFile:
        fh.close()
        raise
    info = CsvInfo(encoding=encoding, columns=columns, fieldnames=header)
    return info, _chunks(path, fh, reader, header, columns, chunk_rows)


def _without_nul(lines: Iterable[str]) -> Iterator[str]:
    """A stray NUL byte in one cell is repaired, not fatal (Python 3.10's csv refuses NUL; binary files were refused above)."""
    for line in lines:
        yield line.replace("\x00", "") if "\x00" in line else line


def _chunks(path, fh, reader, header, columns, chunk_rows) -> Iterator[Chunk]:
    known = set(columns.values())
    chunk = Chunk([], [])
    rows_read = 0
    with fh:
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise BadFile(f"{path.name}: line {reader.line_num}: broken CSV quoting: {exc}") from exc
            rows_read += 1
            if not values or all(not v.strip() for v in values):
                continue
            row = dict(zip(header, values))
            if len(values) > len(header):
                row["_extra_fields"] = "|".join(values[len(header):])
            try:
                headline, reason = _to_headline(row, columns, known)
            except Exception as exc:  # noqa: BLE001 — one odd cell rejects its row, never the file
                headline, reason = None, f"unreadable row: {type(exc).__name__}: {exc}"
            if headline is None:
                chunk.rejects.append(Rejected(line=reader.line_num, reason=reason, row=row))
            else:
                chunk.headlines.append(headline)
            if len(chunk.headlines) + len(chunk.rejects) >= chunk_rows:
                yield chunk
                chunk = Chunk([], [])
    if rows_read == 0:
        raise BadFile(f"{path.name}: header only, no rows")
    if chunk.headlines or chunk.rejects:
        yield chunk


def _to_headline(row: dict[str, str], columns: dict[str, str], known: set[str]) -> tuple[Headline | None, str]:
    get = lambda ours: visible(row.get(columns[ours]) or "") if ours in columns else ""  # noqa: E731
    title = get("title")
    if not title:
        raw = (row.get(columns["title"]) or "")
        return None, "blank title" if not raw.strip() else "title has only invisible characters"
    description = get("description")
    guid, url = get("guid"), get("url")
    extra = {k: v for k, v in row.items() if k not in known and v}
    raw_date = get("published_at")
    published = parse_date(raw_date)
    if raw_date and published is None:
        extra["unparsed_published_at"] = raw_date
    elif published is not None and published > datetime.now(timezone.utc).replace(tzinfo=None) + MAX_FUTURE:
        extra["future_published_at"] = raw_date  # kept, but not put on the time line
        published = None
    return Headline(
        key=document_key(guid, url, title, description),
        title=title,
        description=description,
        url=url or None,
        published_at=published,
        extra=extra,
    ), ""
