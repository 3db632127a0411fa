"""The continual improvement register: one row per improvement, for lists, filters and the
register export.

Each row is a summary of the improvement record (improvement_record.fold), beside the
record itself, which the next event is folded onto: the summary's columns are what an
owner or a reviewer filters and sorts by. The services an improvement concerns are a list,
so they are also kept one per row in a side table the `service` filter reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from projections.improvement.improvement_record import (
    AGGREGATE,
    Record,
    fold,
    open_actions,
    review_date,
)
from projections.runtime.envelope import Envelope
from projections.runtime.projection import Projection
from projections.runtime.read_store import Row, Transaction, rows_where_in

# The columns a register entry shows, in this order.
COLUMNS = (
    "id",
    "number",
    "name",
    "state",
    "outcome",
    "owner",
    "services",
    "area",
    "planned_start",
    "planned_end",
    "review_date",
    "goals",
    "open_actions",
    "plan_version",
    "proposed_at",
    "updated_at",
    "closed_at",
    "version",
    "position",
)
STORED = (*COLUMNS, "record")
FILTERS = ("state", "owner", "service")
_INTEGERS = ("goals", "open_actions", "plan_version", "version")
_TYPES = {c: "INTEGER" if c in _INTEGERS else "TEXT" for c in STORED} | {"position": "BIGINT"}
_DDL = (
    f"CREATE TABLE IF NOT EXISTS rm_improvements"
    f" ({', '.join(f'{c} {t}' for c, t in _TYPES.items())}, PRIMARY KEY (id))",
    "CREATE INDEX IF NOT EXISTS rm_improvements_proposed ON rm_improvements (proposed_at)",
    "CREATE INDEX IF NOT EXISTS rm_improvements_state ON rm_improvements (state, proposed_at)",
    "CREATE INDEX IF NOT EXISTS rm_improvements_owner ON rm_improvements (owner, proposed_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS rm_improvements_number ON rm_improvements (number)",
    """CREATE TABLE IF NOT EXISTS rm_improvement_services (
                improvement_id TEXT NOT NULL, service TEXT NOT NULL,
                PRIMARY KEY (improvement_id, service))""",
    "CREATE INDEX IF NOT EXISTS rm_improvement_services_service"
    " ON rm_improvement_services (service)",
)


class ImprovementRegisterProjection(Projection):
    name = "improvements"
    tables = ("rm_improvements", "rm_improvement_services")
    aggregate_types = frozenset({AGGREGATE})

    def ddl(self) -> list[str]:
        return list(_DDL)

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """One read and one write per improvement of the batch, however many events it has."""
        mine = [e for e in events if e.aggregate_type == AGGREGATE]
        if not mine:
            return
        records = _stored(tx, {e.aggregate_id for e in mine})
        positions: dict[str, int] = {}
        for event in mine:
            records[event.aggregate_id] = fold(records.get(event.aggregate_id), event)
            positions[event.aggregate_id] = event.notification_id
        _store(tx, [(records[i], position) for i, position in positions.items()])


def entry(record: Record, position: int) -> dict[str, Any]:
    """The register's summary of an improvement record."""
    design = record.get("design") or {}
    return {
        "id": record["id"],
        "number": record.get("number"),
        "name": design.get("name"),
        "state": record.get("state"),
        "outcome": record.get("outcome"),
        "owner": design.get("owner") or None,  # "" in the design: nobody owns it yet
        "services": _services(record),
        "area": design.get("area"),
        "planned_start": design.get("planned_start"),
        "planned_end": design.get("planned_end"),
        "review_date": review_date(record),
        "goals": len(record.get("goals", [])),
        "open_actions": open_actions(record),
        "plan_version": record.get("plan_version", 0),
        "proposed_at": record.get("proposed_at"),
        "updated_at": record["updated_at"],
        "closed_at": record.get("closed_at"),
        "version": record["version"],
        "position": position,
    }


def _stored(tx: Transaction, improvement_ids: set[str]) -> dict[str, Record]:
    rows = rows_where_in(tx, "SELECT id, record FROM rm_improvements WHERE id", (), improvement_ids)
    return {row[0]: orjson.loads(row[1]) for row in rows}


def _store(tx: Transaction, folded: list[tuple[Record, int]]) -> None:
    rows = [_row(entry(record, position), record) for record, position in folded]
    updates = ", ".join(f"{c} = excluded.{c}" for c in STORED[1:])
    tx.executemany(
        f"INSERT INTO rm_improvements ({', '.join(STORED)})"
        f" VALUES ({', '.join(['%s'] * len(STORED))})"
        f" ON CONFLICT (id) DO UPDATE SET {updates}",
        rows,
    )
    # The services of each: the ones it concerns now, whatever it concerned before.
    ids = [[record["id"]] for record, _ in folded]
    tx.executemany("DELETE FROM rm_improvement_services WHERE improvement_id = %s", ids)
    services = [[r["id"], s] for r, _ in folded for s in _services(r)]
    if services:
        tx.executemany(
            "INSERT INTO rm_improvement_services (improvement_id, service) VALUES (%s, %s)",
            services,
        )


def _services(record: Record) -> list[str]:
    return list((record.get("design") or {}).get("services", []))


def _row(summary: dict[str, Any], record: Record) -> list[Any]:
    values = {**summary, "services": _json(summary["services"]), "record": _json(record)}
    return [values[c] for c in STORED]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# -- queries ------------------------------------------------------------------------------------


def to_public(row: Row) -> dict[str, Any]:
    summary = dict(zip(COLUMNS, row, strict=True))
    summary["services"] = orjson.loads(summary["services"])
    return summary


def get(tx: Transaction, improvement_id: str) -> Record | None:
    """The improvement's whole record, as the register folded it, or None."""
    row = tx.execute("SELECT record FROM rm_improvements WHERE id = %s", (improvement_id,))
    found = row.fetchone()
    return orjson.loads(found[0]) if found else None


# Where a page starts: after the improvement proposed at that time with that number.
After = tuple[str, str]


def search(
    tx: Transaction,
    filters: Mapping[str, str | tuple[str, ...] | None],
    limit: int,
    after: After | None = None,
) -> tuple[int, list[dict[str, Any]], After | None]:
    """Newest first: (total matching, one page, where the next page starts or None)."""
    where, params = _where(filters)
    total = tx.execute(f"SELECT COUNT(*) FROM rm_improvements WHERE {where}", params).fetchone()
    page_where, page_params = where, list(params)
    if after is not None:
        page_where += " AND (proposed_at < %s OR (proposed_at = %s AND number < %s))"
        page_params += [after[0], after[0], after[1]]
    rows = tx.execute(
        f"SELECT {', '.join(COLUMNS)} FROM rm_improvements WHERE {page_where}"
        " ORDER BY proposed_at DESC, number DESC LIMIT %s",
        [*page_params, limit + 1],  # one more: whether there is a next page
    ).fetchall()
    items = [to_public(r) for r in rows[:limit]]
    following = (items[-1]["proposed_at"], items[-1]["number"]) if len(rows) > limit else None
    return int(total[0]), items, following


def _where(filters: Mapping[str, str | tuple[str, ...] | None]) -> tuple[str, list[str]]:
    """A filter's value, or its values (any of them: a person by name or by token)."""
    used = {k: v for k, v in filters.items() if k in FILTERS and v is not None}
    clauses: list[str] = []
    params: list[str] = []
    for key, value in used.items():
        values = value if isinstance(value, tuple) else (value,)
        match = f"IN ({', '.join('%s' for _ in values)})"
        clauses.append(
            f"id IN (SELECT improvement_id FROM rm_improvement_services WHERE service {match})"
            if key == "service"
            else f"{key} {match}"
        )
        params += values
    return " AND ".join(clauses) or "1 = 1", params


def register(tx: Transaction) -> list[dict[str, Any]]:
    """Every improvement, by number: the register as a reviewer reads it."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM rm_improvements ORDER BY number"
    rows = tx.execute(sql).fetchall()
    return [to_public(r) for r in rows]
