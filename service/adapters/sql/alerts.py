"""The alert tables: what each story has been announced as, and the alerts themselves (port: ports.AlertHistory)."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, func, insert, select, text

from ...domain import FUTURE_KEY, utcnow
from ...sorted_keys import find_rows
from .dialect import insert_for
from .engine import bound, driver_rows, unix_all
from .runs import rebuild_rows_at
from .tables import alerts, assignment_exits, assignments, cluster_events, cluster_snapshots, documents, runs, story_alert_state, topic_snapshots


class SqlAlertHistory:
    """The alert tables: what each story has been announced as, and the alerts themselves."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def story_times(self, run_id: int, since: datetime | None,
                    held: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(story id, news time in unix seconds) of every headline the run clustered or placed since it.
        held: the run's rebuild labels (document ids, story ids) when the caller holds them (the rebuild that
        committed the run): the same rows runs.rebuild_rows_at resolves, not read back (100k documents, 4 runs in the
        history: 0.7-0.8 -> 0.2 s of CPU, 1.8-2.1 -> 0.1-0.5 s at load 9).

        Read after every rebuild and every file, so read as plain driver rows with the times turned
        into seconds in one numpy pass (SQLAlchemy rows with a datetime parsed per row cost 3x more).
        The run's assignments and the window's documents are read apart and joined by id here: the
        join in SQL looked each of a run's rows up in documents by a secondary key (1M documents:
        4.6 s, apart 2.1 s)."""
        when = "COALESCE(published_at, ingested_at)"
        doc_sql, doc_params = f"SELECT id, {when} FROM documents", []
        if since is not None:
            doc_sql += f" WHERE {when} >= {{p}}"
        with self.engine.connect() as c:
            if since is not None:
                doc_params = [bound(c, documents.c.published_at, since)]
            if held is None:
                rows = rebuild_rows_at(c, run_id)
                held = rows["document_id"], rows["cluster_id"]
            held_doc, held_story = np.asarray(held[0], np.int64), np.asarray(held[1], np.int64)
            placed = [r for batch in driver_rows(c, "SELECT document_id, cluster_id FROM assignments WHERE run_id = {p} "
                                                  "AND assigned_by = 'predict' AND cluster_id >= 0", [int(run_id)]) for r in batch]
            member_doc, story = held_doc[held_story >= 0], held_story[held_story >= 0]
            if placed:
                member_doc = np.r_[member_doc, np.asarray([r[0] for r in placed], np.int64)]
                story = np.r_[story, np.asarray([r[1] for r in placed], np.int64)]
            dated = [r for batch in driver_rows(c, doc_sql, doc_params) for r in batch] if len(member_doc) else []
            # a row dated far ahead (2999) has no news time: its ingest time must not stand in, in alerts or their times
            undated_future = {int(r[0]) for r in c.execute(select(documents.c.id).where(
                documents.c.published_at.is_(None), documents.c.extra.contains(FUTURE_KEY)))} if dated else set()
        if undated_future:
            dated = [r for r in dated if int(r[0]) not in undated_future]
        if not len(member_doc) or not dated:
            return np.zeros(0, np.int64), np.zeros(0, np.float64)
        doc_ids, times = zip(*dated)
        doc_ids = np.asarray(doc_ids, np.int64)
        rows, inside = find_rows(doc_ids, member_doc)  # documents outside the window drop out, as the join's filter did
        return story[inside], unix_all(list(times))[rows[inside]]

    def born_stories(self, run_id: int) -> set[int]:
        """Stories born in a run, out of nothing or split off older stories: which are news is the alert rule's call
        (clustering.alerts.fragment_home), not their lineage's."""
        with self.engine.connect() as c:
            return {int(r[0]) for r in c.execute(select(cluster_events.c.cluster_id).where(
                cluster_events.c.run_id == run_id, cluster_events.c.level == "story", cluster_events.c.kind == "born"))}

    def earlier_homes(self, run_id: int, story_ids: list[int], runs_back: int = 3) -> dict[int, dict[int, int]]:
        """story id -> {story of the `runs_back` runs before: how many of its members (this run's) sat there}."""
        if not story_ids:
            return {}
        out: dict[int, dict[int, int]] = {}
        with self.engine.connect() as c:
            before = [r[0] for r in c.execute(select(runs.c.id).where(runs.c.status == "done", runs.c.id < run_id)
                                              .order_by(runs.c.id.desc()).limit(runs_back))]
            if not before:
                return {}
            # this run's members of the asked stories: all written this run (a story new this run changed every member's
            # row); what they held before is each one's latest rebuild row at or before each earlier run, unless it left
            # since (rebuilds write changed rows only: a member that sat still in an announced story has one old row)
            members = dict(c.execute(select(assignments.c.document_id, assignments.c.cluster_id).where(
                assignments.c.run_id == run_id, assignments.c.assigned_by == "rebuild",
                assignments.c.cluster_id.in_([int(x) for x in story_ids]))).all())
            if not members:
                return {}
            docs = sorted(int(d) for d in members)
            rows, exits = [], []
            for start in range(0, len(docs), 5_000):
                chunk = docs[start : start + 5_000]
                rows += c.execute(select(assignments.c.document_id, assignments.c.run_id, assignments.c.cluster_id).where(
                    assignments.c.document_id.in_(chunk), assignments.c.assigned_by == "rebuild", assignments.c.run_id <= max(before))
                    .order_by(assignments.c.document_id, assignments.c.id)).all()
                exits += c.execute(select(assignment_exits.c.document_id, assignment_exits.c.run_id).where(
                    assignment_exits.c.document_id.in_(chunk), assignment_exits.c.run_id <= max(before))).all()
        left: dict[int, list[int]] = {}
        for d, r in exits:
            left.setdefault(int(d), []).append(int(r))
        history: dict[int, list[tuple[int, int]]] = {}
        for d, r, cid in rows:
            history.setdefault(int(d), []).append((int(r), int(cid)))
        seen: dict[tuple[int, int], set[int]] = {}
        for d, held in history.items():
            for r in before:
                at = [(wr, cid) for wr, cid in held if wr <= r]
                if not at:
                    continue
                wr, cid = at[-1]
                if any(wr < x <= r for x in left.get(d, ())) or cid < 0 or cid == int(members[d]):
                    continue
                seen.setdefault((int(members[d]), cid), set()).add(d)
        for (story, earlier), ds in seen.items():
            out.setdefault(story, {})[earlier] = len(ds)
        return out

    def first_done_run(self) -> int | None:
        with self.engine.connect() as c:
            return c.execute(select(func.min(runs.c.id)).where(runs.c.status == "done")).scalar_one()

    def story_cards(self, run_id: int) -> dict[int, dict]:
        """Title, size and topic of each story of a run."""
        q = (select(cluster_snapshots.c.cluster_id, cluster_snapshots.c.name, cluster_snapshots.c.size, cluster_snapshots.c.topic_id,
                    topic_snapshots.c.name.label("topic_name"))
             .select_from(cluster_snapshots.outerjoin(topic_snapshots, (topic_snapshots.c.run_id == cluster_snapshots.c.run_id)
                                                      & (topic_snapshots.c.topic_id == cluster_snapshots.c.topic_id)))
             .where(cluster_snapshots.c.run_id == run_id))
        with self.engine.connect() as c:
            return {int(r.cluster_id): {"title": r.name, "size": int(r.size), "topic_id": r.topic_id, "topic_name": r.topic_name}
                    for r in c.execute(q)}

    def states(self) -> dict[int, tuple[bool, bool]]:
        """story id -> (announced as new, surging now)."""
        with self.engine.connect() as c:
            return {int(r.story_id): (bool(r.announced_new), bool(r.surging)) for r in c.execute(select(story_alert_state))}

    def record(self, raised: list[dict], states: dict[int, tuple[bool, bool]]) -> list[dict]:
        """The alerts raised and every changed state, in one transaction; returns the alerts with their ids."""
        now = utcnow()
        out = []
        with self.engine.begin() as c:
            if states:  # one statement for all of them: the first rebuild of a big home sets tens of thousands
                upsert = insert_for(c.dialect.name, story_alert_state)
                upsert = upsert.on_conflict_do_update(index_elements=["story_id"], set_={
                    "announced_new": upsert.excluded.announced_new, "surging": upsert.excluded.surging, "changed_at": upsert.excluded.changed_at})
                c.execute(upsert, [{"story_id": int(sid), "announced_new": int(announced), "surging": int(surging), "changed_at": now}
                                   for sid, (announced, surging) in states.items()])
            for a in raised:
                row = {**a, "at": now, "details": json.dumps(a.get("details", {}))}
                alert_id = c.execute(insert(alerts).values(**{k: v for k, v in row.items() if k != "topic_name"})).inserted_primary_key[0]
                out.append({**a, "id": int(alert_id), "at": now})
        return out

    def latest(self, limit: int = 100) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(text("SELECT * FROM alert_feed ORDER BY id DESC LIMIT :n"), {"n": limit}).mappings().all()
        return [dict(r) for r in rows]


