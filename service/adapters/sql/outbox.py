"""The webhook's outbox in the history database: an alert stays here from its posting until the endpoint answers 2xx."""

from __future__ import annotations

import json

from sqlalchemy import Engine, delete, insert, select, update

from ...domain import utcnow
from .tables import webhook_outbox


class WebhookOutbox:
    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, alert_id: int, payload: dict) -> None:
        with self.engine.begin() as c:
            if c.execute(select(webhook_outbox.c.alert_id).where(webhook_outbox.c.alert_id == alert_id)).first() is None:
                c.execute(insert(webhook_outbox).values(alert_id=alert_id, payload=json.dumps(payload, default=str), queued_at=utcnow(), tries=0))

    def pending(self) -> list[dict]:
        """Undelivered alerts' payloads, oldest first."""
        with self.engine.connect() as c:
            return [json.loads(r.payload) for r in c.execute(select(webhook_outbox.c.payload).order_by(webhook_outbox.c.alert_id))]

    def delivered(self, alert_id: int) -> None:
        with self.engine.begin() as c:
            c.execute(delete(webhook_outbox).where(webhook_outbox.c.alert_id == alert_id))

    def failed(self, alert_id: int, tries: int, reason: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(webhook_outbox).where(webhook_outbox.c.alert_id == alert_id).values(
                tries=webhook_outbox.c.tries + tries, last_error=reason))
