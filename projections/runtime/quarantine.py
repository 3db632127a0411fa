"""A read model's quarantine: the event of an aggregate it could not fold, with the error,
and the aggregate's later events, waiting behind it (table projection_quarantine)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from projections.runtime.envelope import Envelope
from projections.runtime.read_store import Row, Transaction

# What a stored error message may not carry (PostgreSQL refuses NUL in text).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_NOT_RECORDED = "(not recorded: it waits behind a retried event)"


@dataclass(frozen=True)
class Quarantined:
    """One aggregate a read model could not fold, and what waits behind it."""

    projection: str
    aggregate_id: str
    version: int
    event_type: str
    error: str
    quarantined_at: str
    waiting: int


class Quarantine:
    """The quarantine of the read model `projection`, inside the caller's transactions."""

    def __init__(self, projection: str) -> None:
        self.projection = projection

    def held(self, tx: Transaction) -> set[str]:
        """The aggregates in quarantine."""
        rows = tx.execute(
            "SELECT DISTINCT aggregate_id FROM projection_quarantine WHERE projection = %s",
            (self.projection,),
        ).fetchall()
        return {row[0] for row in rows}

    def park(self, tx: Transaction, event: Envelope, error: str | None) -> None:
        """Put the event in quarantine: the failed one with its error, else one waiting."""
        tx.execute(
            "INSERT INTO projection_quarantine (projection, aggregate_id, version, event_type,"
            " envelope, error, quarantined_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (projection, aggregate_id, version) DO NOTHING",
            (
                self.projection,
                event.aggregate_id,
                event.aggregate_version,
                _printable(event.type),
                _envelope_text(event),
                error,
                _now(),
            ),
        )

    def listing(self, tx: Transaction) -> list[Quarantined]:
        """Every quarantined aggregate, oldest first."""
        rows = tx.execute(
            "SELECT q.aggregate_id, q.version, q.event_type, q.error, q.quarantined_at,"
            " (SELECT COUNT(*) FROM projection_quarantine w WHERE w.projection = q.projection"
            " AND w.aggregate_id = q.aggregate_id) FROM projection_quarantine q"
            " WHERE q.projection = %s AND q.version = (SELECT MIN(m.version) FROM"
            " projection_quarantine m WHERE m.projection = q.projection"
            " AND m.aggregate_id = q.aggregate_id) ORDER BY q.quarantined_at",
            (self.projection,),
        ).fetchall()
        return [self._quarantined(row) for row in rows]

    def _quarantined(self, row: Row) -> Quarantined:
        aggregate_id, version, event_type, error, quarantined_at, waiting = row
        return Quarantined(
            self.projection,
            aggregate_id,
            int(version),
            event_type,
            error or _NOT_RECORDED,
            quarantined_at,
            int(waiting),
        )

    def waiting(self, tx: Transaction, aggregate_id: str) -> list[tuple[int, str]]:
        """The quarantined events of one aggregate, (version, envelope as JSON text), in
        version order."""
        rows = tx.execute(
            "SELECT version, envelope FROM projection_quarantine"
            " WHERE projection = %s AND aggregate_id = %s ORDER BY version",
            (self.projection, aggregate_id),
        ).fetchall()
        return [(int(version), text) for version, text in rows]

    def release(self, tx: Transaction, aggregate_id: str, version: int) -> None:
        tx.execute(
            "DELETE FROM projection_quarantine WHERE projection = %s"
            " AND aggregate_id = %s AND version = %s",
            (self.projection, aggregate_id, version),
        )

    def still_failing(
        self, tx: Transaction, aggregate_id: str, version: int, error: BaseException
    ) -> None:
        tx.execute(
            "UPDATE projection_quarantine SET error = %s, quarantined_at = %s"
            " WHERE projection = %s AND aggregate_id = %s AND version = %s",
            (reason(error), _now(), self.projection, aggregate_id, version),
        )


def reason(error: BaseException) -> str:
    """The error as the quarantine records it: printable, at most 2000 characters."""
    return _printable(f"{type(error).__name__}: {error}")[:2000]


def _printable(text: str) -> str:
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _envelope_text(event: Envelope) -> str:
    """The event as JSON text any database stores: control characters and lone surrogates,
    which a poison event may carry, are escaped."""
    return json.dumps(event.__dict__, default=datetime.isoformat, ensure_ascii=True)
