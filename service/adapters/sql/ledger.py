"""The file ledger and the documents: what ingest writes and the rebuild reads back (port: ports.DocumentLedger)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from itertools import chain

import numpy as np
from sqlalchemy import Engine, func, insert, select, update

from ...domain import Headline, utcnow
from ...sorted_keys import find_rows, find_sorted
from .dialect import insert_for
from .engine import CHUNK, driver_rows
from .tables import assignments, document_revisions, documents, ingested_files

# ledger states of a file that has not ended yet: a new attempt continues its row instead of adding one
UNFINISHED_FILE_STATES = ("processing", "interrupted", "retrying", "parked")
SCAN_MIN, SCAN_SHARE = 2_000, 8  # more ids than SCAN_MIN and at least 1/SCAN_SHARE of the table: read in one scan
TEXT_CHUNK = 20_000  # rows joined into one string: far under SQLite's 1 GB string limit
_JOIN = "\x1f"  # char(31): joins a column's texts in one SQLite string (a text holding it is read row by row)


class SqlLedger:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- the file ledger ---------------------------------------------------------------
    def processed_file(self, sha256: str) -> int | None:
        """The ledger row of a processed file with these bytes, if any."""
        with self.engine.connect() as c:
            return c.execute(
                select(ingested_files.c.id).where(ingested_files.c.sha256 == sha256, ingested_files.c.state == "processed").limit(1)
            ).scalar()

    def file_name(self, file_id: int) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(ingested_files.c.name).where(ingested_files.c.id == file_id)).scalar()

    def start_file(self, name: str, sha256: str, size: int, tries: int = 1) -> tuple[int, int]:
        """(ledger row, attempt number): one row per file, however often it is retried. tries: this try's number as the
        caller counted it (tries that failed before they reached the database, a full disk, count too)."""
        with self.engine.begin() as c:
            row = c.execute(
                select(ingested_files.c.id, ingested_files.c.attempts).where(
                    ingested_files.c.name == name, ingested_files.c.sha256 == sha256, ingested_files.c.state.in_(UNFINISHED_FILE_STATES)
                ).order_by(ingested_files.c.id.desc()).limit(1)
            ).first()
            if row is not None:
                attempt = max(int(row.attempts) + 1, tries)
                c.execute(update(ingested_files).where(ingested_files.c.id == row.id).values(state="processing", attempts=attempt))
                return int(row.id), attempt
            return int(c.execute(
                insert(ingested_files).values(name=name, sha256=sha256, size_bytes=size, state="processing", received_at=utcnow(), attempts=max(1, tries),
                                             rows_seen=0, rows_stored=0, rows_duplicate=0, rows_rejected=0, rows_updated=0)
            ).inserted_primary_key[0]), max(1, tries)

    def finish_file(self, file_id: int, state: str, *, seen=0, stored=0, duplicate=0, rejected=0, updated=0, encoding=None, reason=None) -> None:
        with self.engine.begin() as c:
            c.execute(
                update(ingested_files).where(ingested_files.c.id == file_id).values(
                    state=state, rows_seen=seen, rows_stored=stored, rows_duplicate=duplicate, rows_rejected=rejected, rows_updated=updated,
                    encoding=encoding, reason=reason, finished_at=utcnow(),
                )
            )

    def note_file(self, file_id: int, state: str, reason: str) -> None:
        """A file that will be taken again (retrying) or is left where it is (parked), with why."""
        with self.engine.begin() as c:
            c.execute(update(ingested_files).where(ingested_files.c.id == file_id).values(state=state, reason=reason, finished_at=utcnow()))

    def mark_interrupted(self) -> int:
        """Files a stop cut off mid-file are 'interrupted' (taken again from the inbox); how many."""
        with self.engine.begin() as c:
            return c.execute(update(ingested_files).where(ingested_files.c.state == "processing").values(
                state="interrupted", reason="the process stopped mid-file; taken again from the inbox", finished_at=utcnow())).rowcount

    # -- documents ---------------------------------------------------------------------
    def stored_texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """(title, description) of the ids already stored: a known id with other text is a correction."""
        out: dict[int, tuple[str, str]] = {}
        with self.engine.connect() as c:
            for s in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[s : s + CHUNK]]
                for r in c.execute(select(documents.c.id, documents.c.title, documents.c.description).where(documents.c.id.in_(chunk))):
                    out[int(r.id)] = (r.title, r.description or "")
        return out

    def revise_documents(self, headlines: Sequence[Headline], file_id: int | None, at: datetime) -> None:
        """Corrections: the old text goes to document_revisions, the document keeps the newest text."""
        if not headlines:
            return
        ids = [h.id for h in headlines]
        with self.engine.begin() as c:
            old = {}
            for s in range(0, len(ids), CHUNK):
                for r in c.execute(select(documents).where(documents.c.id.in_(ids[s : s + CHUNK]))):
                    old[int(r.id)] = r
            c.execute(insert(document_revisions), [
                {"document_id": h.id, "title": old[h.id].title, "description": old[h.id].description or "", "url": old[h.id].url,
                 "published_at": old[h.id].published_at, "replaced_at": at, "replaced_by_file_id": file_id}
                for h in headlines if h.id in old
            ])
            for h in headlines:
                c.execute(update(documents).where(documents.c.id == h.id).values(
                    title=h.title, description=h.description, url=h.url,
                    published_at=h.published_at if h.published_at is not None else old[h.id].published_at,
                    extra=json.dumps(h.extra, ensure_ascii=False) if h.extra else None))

    def unplaced_ids(self, ids: Sequence[int]) -> np.ndarray:
        """The ids no rebuild or prediction has placed yet."""
        placed: set[int] = set()
        with self.engine.connect() as c:
            for s in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[s : s + CHUNK]]
                placed.update(int(r[0]) for r in c.execute(select(assignments.c.document_id).where(assignments.c.document_id.in_(chunk)).distinct()))
        return np.array(sorted(set(int(i) for i in ids) - placed), np.int64)

    def all_document_ids(self) -> np.ndarray:
        """Every stored document id, sorted: what a rebuild may cluster (a vector without its row is not news)."""
        with self.engine.connect() as c:
            ids = np.fromiter((r[0] for r in c.execute(select(documents.c.id))), dtype=np.int64)
        ids.sort()
        return ids

    def add_documents(self, headlines: Sequence[Headline], file_id: int | None, ingested_at: datetime) -> int:
        """INSERT OR IGNORE: a row already stored (same identity) stays as it was."""
        rows = [
            {"id": h.id, "key": h.key, "title": h.title, "description": h.description, "url": h.url, "published_at": h.published_at,
             "ingested_at": ingested_at, "file_id": file_id, "extra": json.dumps(h.extra, ensure_ascii=False) if h.extra else None}
            for h in headlines
        ]
        if not rows:
            return 0
        with self.engine.begin() as c:
            res = c.execute(insert_for(c.dialect.name, documents).on_conflict_do_nothing(), rows)
            return res.rowcount

    def document_texts(self, ids: np.ndarray) -> dict[int, tuple[str, str]]:
        """(title, description) by id (see _text_rows for how they are read)."""
        out: dict[int, tuple[str, str]] = {}
        for rows in self._text_rows(ids):
            out.update((i, (t, d)) for i, t, d in rows)
        return out

    def document_text_columns(self, ids: np.ndarray) -> tuple[list[str], list[str]]:
        """(titles, descriptions) of ids, in their order ("" for an id without a row). The rebuild's names read most
        of the table: two lists aligned in numpy cost less than document_texts' dict of pairs (1M documents, a loaded
        machine: the name stage's read and lists about 3.8 -> 1.1 s). The table is read in its own order (id order
        through the primary key's index cost SQLite 2.7x the plain scan) and put in ids' order here."""
        ids = np.asarray(ids, np.int64)
        whole = self._whole_text_columns(ids)
        if whole is not None:
            known, got_titles, got_descriptions = whole
        else:
            got_ids: list[int] = []
            got_titles = []
            got_descriptions = []
            for rows in self._text_rows(ids):
                if rows:
                    i, t, d = zip(*rows)
                    got_ids.extend(i)
                    got_titles.extend(t)
                    got_descriptions.extend(d)
            known = np.asarray(got_ids, np.int64)
        if len(known) == len(ids) and np.array_equal(known, ids):
            return got_titles, got_descriptions
        if not len(known):
            return [""] * len(ids), [""] * len(ids)
        rows, hit = find_rows(known, ids)
        pos = np.where(hit, rows, len(known))  # past the end: the "" appended below

        def aligned(column: list[str]) -> list[str]:
            if not any(column):  # a feed without descriptions
                return [""] * len(ids)
            return np.array(column + [""], dtype=object)[pos].tolist()

        return aligned(got_titles), aligned(got_descriptions)

    def _whole_text_columns(self, ids: np.ndarray) -> tuple[np.ndarray, list[str], list[str]] | None:
        """(ids, titles, descriptions) of all the table's rows, where SQLite is asked for much of it (as _text_rows
        would scan it): each column of TEXT_CHUNK rows joined into one string in SQLite (one query's aggregates see
        the rows in one order) and split here, with no Python row made (1M synthetic documents: the fetch's CPU 0.65 ->
        0.45 s). Where fewer ids are asked for than the table holds (a window), each block keeps only those, looked up
        among them sorted once (np.isin, which sorted them again for every block, cost 0.9 of the read's 1.6 CPU s at
        1M); where as many, the caller drops the others as it aligns them. One read transaction: every block from one
        snapshot, as the one scan it replaces.
        None on another database, for fewer ids, or where a text holds the joining character itself (then read row
        by row)."""
        if self.engine.dialect.name != "sqlite" or len(ids) <= SCAN_MIN:
            return None
        blocks: list[tuple[np.ndarray, list[str], list[str]]] = []
        with self.engine.connect() as c, c.begin():
            first, last, n = next(driver_rows(c, "SELECT min(rowid), max(rowid), count(*) FROM documents"))[0]
            if not n or len(ids) * SCAN_SHARE < n:
                return None
            wanted = np.sort(ids) if len(ids) < n else None
            for start in range(first, last + 1, TEXT_CHUNK):
                k, i, t, d = next(driver_rows(
                    c, "SELECT count(*), group_concat(id, ','), group_concat(title, char(31)), "
                       "group_concat(COALESCE(description, ''), char(31)) FROM documents WHERE rowid >= {p} AND rowid < {p}",
                    (start, start + TEXT_CHUNK)))[0]
                if not k:
                    continue
                t, d = t.split(_JOIN), d.split(_JOIN)
                if len(t) != k or len(d) != k:
                    return None
                got = np.fromstring(i, dtype=np.int64, sep=",")
                if wanted is not None:
                    keep = find_sorted(wanted, got)[1]
                    if not keep.all():
                        rows = np.flatnonzero(keep).tolist()
                        got, t, d = got[keep], [t[j] for j in rows], [d[j] for j in rows]
                blocks.append((got, t, d))
        if not blocks:
            return np.zeros(0, np.int64), [], []
        return np.concatenate([b[0] for b in blocks]), list(chain.from_iterable(b[1] for b in blocks)), \
            list(chain.from_iterable(b[2] for b in blocks))

    def _text_rows(self, ids: np.ndarray):
        """Batches of (id, title, description or "") for ids, in the table's order. A rebuild asks for most of the
        table: one scan of it beats thousands of IN (...) lookups (at 20k of 20k documents 0.47 s of lookups against
        0.02 s of scan), keeping only the rows asked for (a window); a few ids are looked up."""
        ids = np.asarray(ids, np.int64)
        with self.engine.connect() as c:
            table_rows = c.execute(select(func.count()).select_from(documents)).scalar_one()
            if len(ids) > SCAN_MIN and len(ids) * SCAN_SHARE >= table_rows:
                wanted = set(ids.tolist()) if len(ids) < table_rows else None
                for rows in driver_rows(c, "SELECT id, title, COALESCE(description, '') FROM documents"):
                    yield rows if wanted is None else [r for r in rows if r[0] in wanted]
                return
            for s in range(0, len(ids), CHUNK):
                chunk = ids[s : s + CHUNK].tolist()
                sql = f"SELECT id, title, COALESCE(description, '') FROM documents WHERE id IN ({', '.join(['{p}'] * len(chunk))})"
                yield from driver_rows(c, sql, chunk)

    def document_times(self, ids: np.ndarray) -> dict[int, tuple[datetime | None, datetime]]:
        out: dict[int, tuple[datetime | None, datetime]] = {}
        with self.engine.connect() as c:
            for s in range(0, len(ids), CHUNK):
                chunk = [int(i) for i in ids[s : s + CHUNK]]
                for r in c.execute(select(documents.c.id, documents.c.published_at, documents.c.ingested_at).where(documents.c.id.in_(chunk))):
                    out[int(r.id)] = (r.published_at, r.ingested_at)
        return out

    def newest_time(self, by: str) -> datetime | None:
        """The stream's 'now': its newest published time (an undated row's ingest time is the wall clock, later than
        every row of a replayed stream), the newest ingest time only when no row has a published time."""
        with self.engine.connect() as c:
            newest = None if by == "ingested" else c.execute(select(func.max(documents.c.published_at))).scalar_one()
            return newest if newest is not None else c.execute(select(func.max(documents.c.ingested_at))).scalar_one()

