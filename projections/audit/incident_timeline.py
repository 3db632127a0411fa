"""Audit timeline: every event of an incident, who acted, why, and what changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections.incident.incident_view import changes, fold
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import Transaction
from projections.runtime.runner import Projection, rows_where_in
from projections.runtime.time_text import iso


class TimelineProjection(Projection):
    name = "timeline"
    tables = ("rm_timeline", "rm_timeline_heads")
    aggregate_types = frozenset({"Incident"})

    def ddl(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS rm_timeline (
                incident_id TEXT NOT NULL, version INTEGER NOT NULL, event_id TEXT NOT NULL,
                event_type TEXT NOT NULL, occurred_at TEXT NOT NULL, actor_id TEXT NOT NULL,
                actor_kind TEXT NOT NULL, causation_id TEXT NOT NULL, changes TEXT NOT NULL,
                details TEXT NOT NULL, PRIMARY KEY (incident_id, version))""",
            # The folded state after the latest event, to diff the next one against.
            """CREATE TABLE IF NOT EXISTS rm_timeline_heads (
                incident_id TEXT PRIMARY KEY, state TEXT NOT NULL)""",
        ]

    def apply(self, tx: Transaction, event: Envelope) -> None:
        self.apply_many(tx, [event])

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """One line per event; the heads are read and written once per incident of the batch."""
        mine = [e for e in events if e.aggregate_type == "Incident"]
        if not mine:
            return
        heads = {
            i: orjson.loads(state)
            for i, state in rows_where_in(
                tx,
                "SELECT incident_id, state FROM rm_timeline_heads WHERE incident_id",
                (),
                {e.aggregate_id for e in mine},
            )
        }
        lines = []
        for event in mine:
            before = heads.get(event.aggregate_id)
            after = heads[event.aggregate_id] = fold(before, event)
            lines.append(
                (
                    event.aggregate_id,
                    event.aggregate_version,
                    event.event_id,
                    event.name,
                    iso(event.occurred_at),
                    event.actor["id"],
                    event.actor["kind"],
                    event.causation_id,
                    orjson.dumps(changes(before, after)).decode(),
                    orjson.dumps(event.payload).decode(),
                )
            )
        tx.executemany(
            "INSERT INTO rm_timeline (incident_id, version, event_id, event_type, occurred_at,"
            " actor_id, actor_kind, causation_id, changes, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            lines,
        )
        touched = dict.fromkeys(e.aggregate_id for e in mine)
        tx.executemany(
            "INSERT INTO rm_timeline_heads (incident_id, state) VALUES (%s, %s)"
            " ON CONFLICT (incident_id) DO UPDATE SET state = excluded.state",
            [(i, orjson.dumps(heads[i]).decode()) for i in touched],
        )


def entries(tx: Transaction, incident_id: str) -> list[dict[str, Any]]:
    rows = tx.execute(
        "SELECT version, event_id, event_type, occurred_at, actor_id, actor_kind, causation_id,"
        " changes, details FROM rm_timeline WHERE incident_id = %s ORDER BY version",
        (incident_id,),
    ).fetchall()
    return [
        {
            "version": r[0],
            "event_id": r[1],
            "event": r[2],
            "occurred_at": r[3],
            "actor": {"id": r[4], "kind": r[5]},
            "causation_id": r[6],
            "changes": orjson.loads(r[7]),
            "details": orjson.loads(r[8]),
        }
        for r in rows
    ]
