"""The audit trail: every event of every aggregate type, who acted, why, and what changed.

One line per event, whatever its aggregate (incident, SLA policy, source ticket, alert
fingerprint, inbound receipt, and any added later without a change here): its aggregate
and type, version, event type, actor, causation id, when it happened (the time at the
source, for imported events), when this store recorded it and its position in the log.

What changed: for an aggregate with a fold (FOLDS), the fields of the folded record that
differ before and after the event, as {field, before, after}; for the others, the event's
own fields, as {field, after}, since nothing here knows what they were before. An event
that names nobody (`by`) is published as the `system` automation's, and recorded so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

import orjson

from projections.improvement import improvement_record
from projections.incident import incident_record
from projections.runtime.envelope import Envelope
from projections.runtime.projection import Projection
from projections.runtime.read_store import Transaction, rows_where_in
from projections.runtime.time_text import iso

Record = dict[str, Any]
# The aggregates whose state is folded, to show what each event changed.
FOLDS: dict[str, Callable[[Record | None, Envelope], Record]] = {
    "Incident": incident_record.fold,
    "Improvement": improvement_record.fold,
}
LINE_COLUMNS = (
    "aggregate_id",
    "version",
    "aggregate_type",
    "event_id",
    "event_type",
    "occurred_at",
    "recorded_at",
    "position",
    "actor_id",
    "actor_kind",
    "causation_id",
    "changes",
    "details",
)
Heads = dict[str, Record]

_DDL = (
    # Schema 1's tables: setup drops only the tables listed in `tables`.
    "DROP TABLE IF EXISTS rm_timeline",
    "DROP TABLE IF EXISTS rm_timeline_heads",
    """CREATE TABLE IF NOT EXISTS rm_audit_trail (
                aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,
                aggregate_type TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
                occurred_at TEXT NOT NULL, recorded_at TEXT, position BIGINT NOT NULL,
                actor_id TEXT NOT NULL, actor_kind TEXT NOT NULL, causation_id TEXT NOT NULL,
                changes TEXT NOT NULL, details TEXT NOT NULL,
                PRIMARY KEY (aggregate_id, version))""",
    "CREATE INDEX IF NOT EXISTS rm_audit_trail_type"
    " ON rm_audit_trail (aggregate_type, occurred_at)",
    # An event by its id (its inclusion proof), and the events of a stretch or an actor.
    "CREATE INDEX IF NOT EXISTS rm_audit_trail_event ON rm_audit_trail (event_id)",
    "CREATE INDEX IF NOT EXISTS rm_audit_trail_occurred ON rm_audit_trail (occurred_at)",
    "CREATE INDEX IF NOT EXISTS rm_audit_trail_actor ON rm_audit_trail (actor_id, occurred_at)",
    "CREATE INDEX IF NOT EXISTS rm_audit_trail_position ON rm_audit_trail (position)",
    "CREATE INDEX IF NOT EXISTS rm_audit_trail_causation ON rm_audit_trail (causation_id)",
    # The folded record after the latest event, to diff the next one against.
    """CREATE TABLE IF NOT EXISTS rm_audit_heads (
                aggregate_id TEXT PRIMARY KEY, state TEXT NOT NULL)""",
)


class AuditTrailProjection(Projection):
    # The name keys its feed positions, quarantine, readiness and metrics: another name
    # would restart them from nothing.
    name = "timeline"
    tables = ("rm_audit_trail", "rm_audit_heads")
    aggregate_types = None  # every one, including those added later
    schema_version = 3  # improvements are folded (FOLDS): their changes field by field

    def ddl(self) -> list[str]:
        return list(_DDL)

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """One line per event; the heads are read and written once per folded aggregate."""
        if not events:
            return
        folded = {e.aggregate_id for e in events if e.aggregate_type in FOLDS}
        heads = _heads(tx, folded)
        lines = [_line(event, _changes(heads, event)) for event in events]
        tx.executemany(
            f"INSERT INTO rm_audit_trail ({', '.join(LINE_COLUMNS)})"
            f" VALUES ({', '.join(['%s'] * len(LINE_COLUMNS))}) ON CONFLICT DO NOTHING",
            lines,
        )
        _save_heads(tx, {aggregate_id: heads[aggregate_id] for aggregate_id in folded})


def _heads(tx: Transaction, aggregate_ids: set[str]) -> Heads:
    rows = rows_where_in(
        tx, "SELECT aggregate_id, state FROM rm_audit_heads WHERE aggregate_id", (), aggregate_ids
    )
    return {aggregate_id: orjson.loads(state) for aggregate_id, state in rows}


def _save_heads(tx: Transaction, heads: Heads) -> None:
    if not heads:
        return
    tx.executemany(
        "INSERT INTO rm_audit_heads (aggregate_id, state) VALUES (%s, %s)"
        " ON CONFLICT (aggregate_id) DO UPDATE SET state = excluded.state",
        [(aggregate_id, _json(state)) for aggregate_id, state in heads.items()],
    )


def _changes(heads: Heads, event: Envelope) -> list[dict[str, Any]] | None:
    """What the event changed; folds the aggregate's head on if it has a fold. None for an
    aggregate without one: its changes are its details, read back from those."""
    fold = FOLDS.get(event.aggregate_type)
    if fold is None:
        return None
    before = heads.get(event.aggregate_id)
    after = heads[event.aggregate_id] = fold(before, event)
    return incident_record.changes(before, after)  # a diff of two records, of any fold


def _line(event: Envelope, changes: list[dict[str, Any]] | None) -> tuple[object, ...]:
    return (
        event.aggregate_id,
        event.aggregate_version,
        event.aggregate_type,
        event.event_id,
        event.name,
        iso(event.occurred_at),
        _moment(event.recorded_at),
        event.notification_id,
        event.actor["id"],
        event.actor["kind"],
        event.causation_id,
        _json(changes),
        _json(event.payload),
    )


def _moment(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def entries(tx: Transaction, aggregate_id: str, aggregate_type: str | None = None) -> list[Record]:
    """Every recorded event of one aggregate (of `aggregate_type`, if given), oldest first."""
    only_type = " AND aggregate_type = %s" if aggregate_type else ""
    rows = tx.execute(
        f"SELECT {', '.join(LINE_COLUMNS)} FROM rm_audit_trail WHERE aggregate_id = %s"
        f"{only_type} ORDER BY version",
        (aggregate_id, aggregate_type) if aggregate_type else (aggregate_id,),
    ).fetchall()
    return [_entry(dict(zip(LINE_COLUMNS, row, strict=True))) for row in rows]


def _entry(line: Record) -> Record:
    changes, details = orjson.loads(line["changes"]), orjson.loads(line["details"])
    return {
        **{key: line[key] for key in ("aggregate_id", "aggregate_type", "version", "event_id")},
        "event": line["event_type"],
        **{key: line[key] for key in ("occurred_at", "recorded_at", "position")},
        "actor": {"id": line["actor_id"], "kind": line["actor_kind"]},
        "causation_id": line["causation_id"],
        "changes": changes if changes is not None else _fields(details),
        "details": details,
    }


def _fields(details: Record) -> list[dict[str, Any]]:
    return [{"field": key, "after": value} for key, value in details.items()]


def position_of(tx: Transaction, event_id: str) -> int | None:
    """The log position of an event, by its id."""
    row = tx.execute(
        "SELECT position FROM rm_audit_trail WHERE event_id = %s", (event_id,)
    ).fetchone()
    return int(row[0]) if row else None


def positions(
    tx: Transaction,
    start: datetime | None,
    end: datetime | None,
    actor: str | tuple[str, ...] | None,
) -> list[int]:
    """The log positions of the events that happened in [start, end) (either open), by
    `actor` if given, in log order."""
    where, params = ["1 = 1"], []
    for clause, value in (("occurred_at >= %s", start), ("occurred_at < %s", end)):
        if value is not None:
            where.append(clause)
            params.append(iso(value))
    if actor:  # a name, or the names it may be recorded under
        names = (actor,) if isinstance(actor, str) else tuple(actor)
        where.append(f"actor_id IN ({', '.join('%s' for _ in names)})")
        params.extend(names)
    rows = tx.execute(
        f"SELECT position FROM rm_audit_trail WHERE {' AND '.join(where)} ORDER BY position",
        params,
    ).fetchall()
    return [int(row[0]) for row in rows]


# What `search` filters on: a column and its comparison.
_FILTERS = {
    "actor": "actor_id = %s",
    "aggregate_type": "aggregate_type = %s",
    "causation_id": "causation_id = %s",
    "start": "occurred_at >= %s",
    "end": "occurred_at < %s",
}


def search(tx: Transaction, filters: dict[str, Any], after: int, limit: int) -> list[Record]:
    """Events of every aggregate in log order, after the position `after`; the filters
    (_FILTERS, datetimes for `start` and `end`) combine with AND."""
    where, params = ["position > %s"], [cast(object, after)]
    for name, value in filters.items():
        if isinstance(value, tuple):  # any of several values
            column = _FILTERS[name].split(" ")[0]
            where.append(f"{column} IN ({', '.join('%s' for _ in value)})")
            params.extend(value)
        elif value is not None:
            where.append(_FILTERS[name])
            params.append(iso(value) if isinstance(value, datetime) else value)
    rows = tx.execute(
        f"SELECT {', '.join(LINE_COLUMNS)} FROM rm_audit_trail WHERE {' AND '.join(where)}"
        " ORDER BY position LIMIT %s",
        [*params, limit],
    ).fetchall()
    return [_entry(dict(zip(LINE_COLUMNS, row, strict=True))) for row in rows]


def state_as_of(events: Sequence[Envelope], moment: datetime) -> tuple[int, Record] | None:
    """Any aggregate as it stood at `moment` (an imported event counts at its source time):
    its version and record, by its type's fold (FOLDS), else every field as its events
    last recorded it. None: it did not exist yet."""
    then = [event for event in events if event.occurred_at <= moment]
    if not then:
        return None
    fold = FOLDS.get(then[0].aggregate_type)
    record: Record = {}
    for event in then:
        record = fold(record or None, event) if fold else {**record, **event.payload}
    return then[-1].aggregate_version, record
