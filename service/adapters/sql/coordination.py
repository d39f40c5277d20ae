"""Claims on inbox files and leases on roles between workers (port: ports.Coordination)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from ...domain import utcnow
from .dialect import insert_for
from .tables import file_claims, leases


class SqlCoordination:
    """Claims on inbox files and leases on roles, through the database every worker shares.

    Both are one conditional upsert: the row is taken when absent, expired, or (claims) finished; the
    database decides the race, so two workers never both believe they hold the same file or lease.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def claim_file(self, name: str, worker: str, lease_s: float) -> bool:
        now = utcnow()
        stale = now - timedelta(seconds=lease_s)
        with self.engine.begin() as c:
            stmt = insert_for(c.dialect.name, file_claims).values(name=name, worker=worker, claimed_at=now, heartbeat_at=now, done=0)
            stmt = stmt.on_conflict_do_update(
                index_elements=["name"], set_={"worker": worker, "claimed_at": now, "heartbeat_at": now, "done": 0},
                where=(file_claims.c.heartbeat_at < stale) | (file_claims.c.done == 1) | (file_claims.c.worker == worker))
            c.execute(stmt)
            holder = c.execute(select(file_claims.c.worker).where(file_claims.c.name == name)).scalar_one()
        return holder == worker

    def heartbeat(self, names: Sequence[str], worker: str) -> None:
        if names:
            with self.engine.begin() as c:
                c.execute(update(file_claims).where(file_claims.c.name.in_(list(names)), file_claims.c.worker == worker)
                          .values(heartbeat_at=utcnow()))

    def finish_claim(self, name: str, worker: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(file_claims).where(file_claims.c.name == name, file_claims.c.worker == worker).values(done=1))

    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        now = utcnow()
        until = now + timedelta(seconds=ttl_s)
        with self.engine.begin() as c:
            stmt = insert_for(c.dialect.name, leases).values(name=name, holder=holder, expires_at=until)
            stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"holder": holder, "expires_at": until},
                                              where=(leases.c.expires_at < now) | (leases.c.holder == holder))
            c.execute(stmt)
            return c.execute(select(leases.c.holder).where(leases.c.name == name)).scalar_one() == holder

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(leases).where(leases.c.name == name, leases.c.holder == holder).values(expires_at=datetime(1970, 1, 1)))
