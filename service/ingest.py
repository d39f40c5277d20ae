"""CSV bytes -> validated headlines and rejected rows, streamed in chunks so memory stays bounded."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO

from .domain import FUTURE_KEY, Headline, Rejected, document_key
from .files import LINE_ENDS

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
# byte-order marks of the wide encodings, UTF-32 first (its little-endian mark starts with UTF-16's); the codec named
# here reads the mark and drops it
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_WHITESPACE = re.compile(r"\s+")
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))


def allow_long_fields() -> None:
    """Cells up to MAX_FIELD_CHARS (the csv module stops at 128 KiB). The limit is process-wide, so it is set by
    each reader of user CSV rather than as a side effect of importing this module."""
    csv.field_size_limit(MAX_FIELD_CHARS)


class BadFile(Exception):
    """The whole file cannot be read as headlines; the message says why and where.

    incomplete: the file may simply not be written yet (empty, a header without rows, a header without its line end).
    """

    def __init__(self, message: str, incomplete: bool = False):
        super().__init__(message)
        self.incomplete = incomplete


@dataclass
class Chunk:
    headlines: list[Headline]
    rejects: list[Rejected]


@dataclass
class CsvInfo:
    encoding: str
    columns: dict[str, str]  # our field -> the file's column name
    fieldnames: list[str]
    dates: DateNotes = field(default_factory=lambda: DateNotes())


def detect_encoding(path: Path, size: int | None = None) -> str:
    """utf-8 (or utf-8 with BOM) when every byte decodes; UTF-16 or UTF-32 when the file starts with their BOM
    (spreadsheets save "Unicode text" so); latin-1 otherwise, which always decodes."""
    with _open_prefix(path, size) as fh:
        head = fh.read(SNIFF_BYTES)
    wide = next((name for bom, name in _WIDE_BOMS if head.startswith(bom)), None)
    if wide is None:
        controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
        if controls > BINARY_CONTROL_SHARE * len(head):
            raise BadFile(f"{path.name}: binary data ({controls} control or NUL bytes in the first {len(head)} bytes), not a CSV text file")
    encoding = wide or ("utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8")
    decoder = codecs.getincrementaldecoder(wide or "utf-8")()
    offset = 0
    with _open_prefix(path, size) as fh:
        while block := fh.read(READ_BYTES):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                if wide:
                    raise BadFile(f"{path.name}: starts with a {wide.upper()} byte-order mark but is not {wide.upper()} from byte {offset + exc.start}") from exc
                return f"latin-1 (not UTF-8 from byte {offset + exc.start})"
            offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        if wide:
            raise BadFile(f"{path.name}: {wide.upper()} text cut at its end") from exc
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


def parse_date(raw: str | None, dayfirst: bool = False) -> datetime | None:
    """Naive UTC, or None when the text is no date we can place on the time line (out of range included).

    ISO 8601 and RFC 2822 first (exact); then python-dateutil for the forms people write (10/03/2014 16:52,
    March 10, 2014, 10.03.2014), with `dayfirst` for numeric dates that could be either (decided per file,
    see DateNotes). A text that lacks a day, month or year (a bare "2014", "March") is no date: dateutil would
    fill the gap from today.
    """
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            parsed = _parse_free_date(text, dayfirst)
            if parsed is None:
                return None
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
        parsed.replace(tzinfo=timezone.utc).timestamp()  # must fit the stores' unix seconds
    except (OverflowError, ValueError, OSError):
        return None
    return parsed


def _parse_free_date(text: str, dayfirst: bool) -> datetime | None:
    import warnings

    from dateutil import parser as du

    if len(text) > 64 or not any(ch.isdigit() for ch in text):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unknown time zone names: read as UTC, like a date without one
            a = du.parse(text, dayfirst=dayfirst, default=datetime(2001, 1, 1))
            b = du.parse(text, dayfirst=dayfirst, default=datetime(2002, 2, 2))
    except (ValueError, OverflowError, TypeError):
        return None
    if a.date() != b.date():  # a part of the date was missing and filled from the default
        return None
    return a


# a numeric date whose first two parts could be day and month in either order: 10/03/2014, 10.03.14, 10-03-2014
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[./-](\d{1,2})[./-](\d{2}|\d{4})\b")


@dataclass
class DateNotes:
    """What one file's dates needed: the day/month order chosen for it (and why), and the rows whose date is no
    date or lies in the future. The file's summary line says so: a date is never dropped in silence."""

    dayfirst: bool = False
    order_note: str = ""
    unparsed: int = 0
    unparsed_example: str = ""
    future: int = 0
    future_example: str = ""

    def decide_order(self, raws: list[tuple[int, str]]) -> None:
        """Day or month first, from the numeric dates whose first or second part is over 12 (only one order reads them)."""
        day_first, month_first, ambiguous = [], [], 0
        for line, raw in raws:
            m = _NUMERIC_DATE.match(raw or "")
            if not m:
                continue
            a, b = int(m.group(1)), int(m.group(2))
            if a > 12 >= b:
                day_first.append((line, raw))
            elif b > 12 >= a:
                month_first.append((line, raw))
            elif a <= 12 and b <= 12:
                ambiguous += 1
        if not ambiguous:
            return
        if len(day_first) > len(month_first):
            self.dayfirst = True
            line, raw = day_first[0]
            self.order_note = f"numeric dates read day first ({raw.strip()!r} on line {line} says so)"
        elif month_first:
            line, raw = month_first[0]
            self.order_note = f"numeric dates read month first ({raw.strip()!r} on line {line} says so)"
        else:
            self.order_note = (f"{ambiguous} numeric dates such as 03/04 could be day or month first and no date in the file says "
                               "which: read month first")
        if day_first and month_first:
            self.order_note += f" ({len(day_first)} rows look day first, {len(month_first)} month first: check the source)"

    def summary(self) -> list[str]:
        out = [self.order_note] if self.order_note else []
        if self.unparsed:
            out.append(f"{self.unparsed} date{'s' * (self.unparsed != 1)} not understood (e.g. {self.unparsed_example}): "
                       "stored without a published time")
        if self.future:
            out.append(f"{self.future} date{'s' * (self.future != 1)} more than {MAX_FUTURE.days} days ahead (e.g. {self.future_example}): "
                       "kept and listed as such, left off the time line")
        return out


def normalise_text(text: str) -> str:
    """One text, one spelling: control and format characters out (NUL, zero-width spaces and joiners, BOMs,
    soft hyphens), Unicode NFC (an accent typed as one character or as letter + combining mark is the same
    text), every run of whitespace one space, no space at the ends. Identity (a hash of the text when there is
    no guid or url) and "is this a correction?" both see this form, so the same words in other bytes are one document."""
    if text.isascii() and text.isprintable() and "  " not in text:
        return text.strip()  # the common case, cheap
    if not text.isprintable():
        text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs"))
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


class _Prefix(io.RawIOBase):
    """The first `size` bytes of a file: a file still growing is read as it was when we looked."""

    def __init__(self, raw: IO[bytes], size: int | None):
        self._raw, self._left = raw, size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buf) -> int:
        view = memoryview(buf)
        if self._left is not None:
            view = view[: max(0, self._left)]
        n = self._raw.readinto(view)
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_prefix(path: Path, size: int | None) -> IO[bytes]:
    return io.BufferedReader(_Prefix(path.open("rb", buffering=0), size), READ_BYTES)


def _prefix_ends_line(path: Path, size: int) -> bool:
    with path.open("rb") as fh:
        fh.seek(max(0, size - 4))
        return fh.read(min(4, size)).endswith(LINE_ENDS)


def read_headlines(path: Path, chunk_rows: int = 5000, size: int | None = None) -> tuple[CsvInfo, Iterator[Chunk]]:
    """Open a CSV, check its header, and return the chunks of parsed rows lazily.

    File-level problems (empty, binary, no title column, broken quoting) raise BadFile;
    row-level problems (blank title) become Rejected rows and the rest goes on.
    size: read only the first `size` bytes (what the caller hashed). A last row without a line end that lacks
    fields or ends inside quotes was cut off by its writer: it is rejected, never stored as a document.
    """
    size = path.stat().st_size if size is None else size
    if size == 0:
        raise BadFile(f"{path.name}: empty file", incomplete=True)
    encoding = detect_encoding(path, size)
    ends_line = _prefix_ends_line(path, size)
    allow_long_fields()
    fh = io.TextIOWrapper(_open_prefix(path, size), encoding=_codec(encoding), newline="")
    reader = csv.reader(_without_nul(fh), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        fh.close()
        raise BadFile(f"{path.name}: empty file", incomplete=True)
    except csv.Error as exc:
        fh.close()
        raise BadFile(f"{path.name}: line 1: unreadable header: {exc}", incomplete=not ends_line) from exc
    header = [h.strip() for h in header]
    try:
        columns = map_columns(header, path.name)
    except BadFile as exc:
        fh.close()
        if reader.line_num <= 1 and not ends_line:  # a header still being written
            raise BadFile(str(exc), incomplete=True) from exc
        raise
    info = CsvInfo(encoding=encoding, columns=columns, fieldnames=header)
    return info, _chunks(path, fh, reader, header, columns, chunk_rows, ends_line, info.dates)


def _without_nul(lines: Iterable[str]) -> Iterator[str]:
    """A stray NUL byte in one cell is repaired, not fatal (Python 3.10's csv refuses NUL; binary files were refused above)."""
    for line in lines:
        yield line.replace("\x00", "") if "\x00" in line else line


def _rows(path, reader, header, ends_line) -> Iterator[tuple[list[str] | None, int, str]]:
    """(values, line, why rejected) per row; the last row is held back until we know it is the last."""
    held = None
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            at_end = not ends_line and "unexpected end of data" in str(exc)
            if at_end and held is not None:  # end of data inside quotes: the last row was cut mid-cell
                yield held
                held = None
            if at_end:
                yield None, reader.line_num, "cut last row: the file ends inside a quoted cell, without a line end"
                return
            raise BadFile(f"{path.name}: line {reader.line_num}: broken CSV quoting: {exc}") from exc
        if held is not None:
            yield held
        held = (values, reader.line_num, "")
    if held is not None:
        values, line, _ = held
        if not ends_line and 0 < len(values) < len(header):
            held = (values, line, f"cut last row: no line end and {len(values)} of {len(header)} fields (its writer may have stopped mid-row)")
        yield held


def _chunks(path, fh, reader, header, columns, chunk_rows, ends_line=True, dates: DateNotes | None = None) -> Iterator[Chunk]:
    known = set(columns.values())
    chunk = Chunk([], [])
    rows_read = 0
    dates = dates if dates is not None else DateNotes()
    with fh:
        rows = _rows(path, reader, header, ends_line)
        if "published_at" in columns:  # the first chunk's dates decide the file's day/month order
            first = list(itertools.islice(rows, chunk_rows))
            at = header.index(columns["published_at"])
            dates.decide_order([(line, v[at]) for v, line, _ in first if v and len(v) > at])
            rows = itertools.chain(first, rows)
        for values, line_num, cut in rows:
            rows_read += 1
            if cut:
                row = dict(zip(header, values or []))
                chunk.rejects.append(Rejected(line=line_num, reason=cut, row=row))
                continue
            if not values or all(not v.strip() for v in values):
                continue
            row = dict(zip(header, values))
            if len(values) > len(header):
                row["_extra_fields"] = "|".join(values[len(header):])
            try:
                headline, reason = _to_headline(row, columns, known, dates, line_num)
            except Exception as exc:  # noqa: BLE001 — one odd cell rejects its row, never the file
                headline, reason = None, f"unreadable row: {type(exc).__name__}: {exc}"
            if headline is None:
                chunk.rejects.append(Rejected(line=line_num, reason=reason, row=row))
            else:
                chunk.headlines.append(headline)
            if len(chunk.headlines) + len(chunk.rejects) >= chunk_rows:
                yield chunk
                chunk = Chunk([], [])
    if rows_read == 0:
        raise BadFile(f"{path.name}: header only, no rows", incomplete=True)
    if chunk.headlines or chunk.rejects:
        yield chunk


def _to_headline(row: dict[str, str], columns: dict[str, str], known: set[str], dates: DateNotes | None = None,
                 line: int = 0) -> tuple[Headline | None, str]:
    get = lambda ours: normalise_text(row.get(columns[ours]) or "") if ours in columns else ""  # noqa: E731
    title = get("title")
    if not title:
        raw = (row.get(columns["title"]) or "")
        return None, "blank title" if not raw.strip() else "title has only invisible characters"
    description = get("description")
    guid, url = get("guid"), get("url")
    extra = {k: v for k, v in row.items() if k not in known and v}
    raw_date = get("published_at")
    dates = dates if dates is not None else DateNotes()
    published = parse_date(raw_date, dates.dayfirst)
    if raw_date and published is None:
        extra["unparsed_published_at"] = raw_date
        dates.unparsed += 1
        dates.unparsed_example = dates.unparsed_example or f"{raw_date[:40]!r} on line {line}"
    elif published is not None and published > datetime.now(timezone.utc).replace(tzinfo=None) + MAX_FUTURE:
        # kept as what it says, never as 'now': the report lists it apart, alert times leave it out (FUTURE_KEY)
        extra[FUTURE_KEY] = published.isoformat(timespec="seconds")
        if published.isoformat(timespec="seconds") != raw_date:
            extra["raw_published_at"] = raw_date
        dates.future += 1
        dates.future_example = dates.future_example or f"{raw_date[:40]!r} on line {line}"
        published = None
    return Headline(
        key=document_key(guid, url, title, description),
        title=title,
        description=description,
        url=url or None,
        published_at=published,
        extra=extra,
    ), ""
