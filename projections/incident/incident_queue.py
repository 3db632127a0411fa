"""Incidents read model: the record of every incident, for queues and filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from projections.incident.incident_record import FIELDS, Record, fold
from projections.runtime.envelope import Envelope
from projections.runtime.projection import Projection
from projections.runtime.read_store import Row, Transaction, rows_where_in

COLUMNS = FIELDS
FILTERS = ("state", "priority", "assignment_group", "assignee", "number", "external_ref")
_TYPES = {
    **{c: "TEXT" for c in COLUMNS},
    "impact": "INTEGER",
    "urgency": "INTEGER",
    "major": "BOOLEAN",
    "satisfaction": "INTEGER",
    "reassignment_count": "INTEGER",
    "reopen_count": "INTEGER",
    "version": "INTEGER",
}
_DDL = (
    f"CREATE TABLE IF NOT EXISTS rm_incidents"
    f" ({', '.join(f'{c} {t}' for c, t in _TYPES.items())}, PRIMARY KEY (id))",
    *(
        f"CREATE INDEX IF NOT EXISTS rm_incidents_{c} ON rm_incidents ({c}, opened_at)"
        for c in ("state", "priority", "assignment_group", "assignee")
    ),
    "CREATE INDEX IF NOT EXISTS rm_incidents_opened ON rm_incidents (opened_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS rm_incidents_number ON rm_incidents (number)",
    "CREATE INDEX IF NOT EXISTS rm_incidents_external ON rm_incidents (external_ref)",
)


class IncidentsProjection(Projection):
    name = "incidents"
    tables = ("rm_incidents",)
    aggregate_types = frozenset({"Incident"})

    def ddl(self) -> list[str]:
        return list(_DDL)

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """One read and one upsert per incident of the batch, however many events it has."""
        mine = [e for e in events if e.aggregate_type == "Incident"]
        if not mine:
            return
        records = _stored(tx, {e.aggregate_id for e in mine})
        for event in mine:
            records[event.aggregate_id] = fold(records.get(event.aggregate_id), event)
        touched = dict.fromkeys(e.aggregate_id for e in mine)
        _store(tx, [records[i] for i in touched])


def _stored(tx: Transaction, incident_ids: set[str]) -> dict[str, Record]:
    rows = rows_where_in(
        tx, f"SELECT {', '.join(COLUMNS)} FROM rm_incidents WHERE id", (), incident_ids
    )
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in rows}


def _store(tx: Transaction, records: list[Record]) -> None:
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
    tx.executemany(
        f"INSERT INTO rm_incidents ({', '.join(COLUMNS)})"
        f" VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        f" ON CONFLICT (id) DO UPDATE SET {updates}",
        [[record.get(c) for c in COLUMNS] for record in records],
    )


def to_public(row: Row) -> Record:
    record = dict(zip(COLUMNS, row, strict=True))
    record["major"] = bool(record["major"])
    return record


def get(tx: Transaction, incident_id: str) -> Record | None:
    row = tx.execute(
        f"SELECT {', '.join(COLUMNS)} FROM rm_incidents WHERE id = %s", (incident_id,)
    ).fetchone()
    return to_public(row) if row else None


def search(
    tx: Transaction,
    filters: Mapping[str, str | tuple[str, ...] | None],
    limit: int,
    offset: int,
) -> tuple[int, list[Record]]:
    """Newest first; returns (total matching, one page). A filter given several values
    matches any of them."""
    used = {k: v for k, v in filters.items() if k in FILTERS and v is not None}
    where = " AND ".join(_match(k, v) for k, v in used.items()) or "1 = 1"
    params = [x for v in used.values() for x in ((v,) if isinstance(v, str) else v)]
    total = tx.execute(f"SELECT COUNT(*) FROM rm_incidents WHERE {where}", params).fetchone()[0]
    rows = tx.execute(
        f"SELECT {', '.join(COLUMNS)} FROM rm_incidents WHERE {where}"
        " ORDER BY opened_at DESC, number DESC LIMIT %s OFFSET %s",
        [*params, limit, offset],
    ).fetchall()
    return int(total), [to_public(r) for r in rows]


def records(tx: Transaction, incident_ids: set[str]) -> dict[str, Record]:
    """The records of these incidents that the read model has, by id."""
    return {
        i: to_public(tuple(r[c] for c in COLUMNS)) for i, r in _stored(tx, incident_ids).items()
    }


def _match(column: str, value: str | tuple[str, ...]) -> str:
    if isinstance(value, str):
        return f"{column} = %s"
    return f"{column} IN ({', '.join('%s' for _ in value)})"
