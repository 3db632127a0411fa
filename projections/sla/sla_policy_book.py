"""The policies the SLA clocks know: every version of every policy, learnt from the
`SlaPolicy.*` events of the feed (table sla_policy_versions), to pick the version in force
when a clock starts and to read its rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict

import orjson

from domain.sla.policy_rules import choose
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import Row, Transaction
from projections.runtime.time_text import iso

VERSION_COLUMNS = (
    "policy_id",
    "version",
    "effective_from",
    "created_at",
    "name",
    "rank",
    "active",
    "spec",
    "actor_id",
    "causation_id",
)
# Where the draft of a simulation is in force: from the beginning of time.
EPOCH = "0001-01-01T00:00:00.000000Z"
DRAFT_ID = "draft"


class PolicyVersion(TypedDict):
    """One version of a policy, as the clocks read it."""

    policy_id: str
    version: int
    effective_from: str  # when this version was recorded
    created_at: str  # when the policy's first version was
    spec: Mapping[str, Any]  # as recorded, in the spec's shape of its time


class PolicyBook:
    """Every known version of every policy, for choosing one and reading its rules."""

    def __init__(self, rows: Iterable[PolicyVersion] = ()) -> None:
        self.versions: dict[str, list[PolicyVersion]] = {}
        for row in rows:
            self.add(row)

    def add(self, row: PolicyVersion) -> None:
        versions = self.versions.setdefault(row["policy_id"], [])
        versions[:] = [v for v in versions if v["version"] != row["version"]] + [row]
        versions.sort(key=lambda v: v["version"])

    def spec(self, policy_id: str, version: int) -> Mapping[str, Any] | None:
        for row in self.versions.get(policy_id, ()):
            if row["version"] == version:
                return row["spec"]
        return None

    def in_force(self, policy_id: str, at: str) -> PolicyVersion | None:
        """The version in force at `at`: the latest one effective by then.

        A moment before the policy's first version (an imported ticket whose source time
        predates the policy) gets the first version.
        """
        versions = self.versions.get(policy_id) or []
        current = None
        for row in versions:
            if row["effective_from"] <= at:
                current = row
        return current or (versions[0] if versions else None)

    def choose(self, ticket: Mapping[str, Any], at: str) -> PolicyVersion | None:
        """The version (row) of the policy that applies to a ticket starting at `at`."""
        rows = {pid: self.in_force(pid, at) for pid in self.versions}
        chosen = choose(
            (
                (pid, self.versions[pid][0]["created_at"], row["spec"])
                for pid, row in rows.items()
                if row
            ),
            ticket,
        )
        return rows[chosen] if chosen else None


def draft_book(spec: Mapping[str, Any]) -> PolicyBook:
    """A simulation's book: only the draft, in force for all time."""
    draft: PolicyVersion = {
        "policy_id": DRAFT_ID,
        "version": 1,
        "effective_from": EPOCH,
        "created_at": EPOCH,
        "spec": spec,
    }
    return PolicyBook([draft])


def stored_book(tx: Transaction) -> PolicyBook:
    """The book of every version stored in sla_policy_versions."""
    rows = tx.execute(f"SELECT {', '.join(VERSION_COLUMNS)} FROM sla_policy_versions").fetchall()
    return PolicyBook(_version(row) for row in rows)


def _version(row: Row) -> PolicyVersion:
    stored = dict(zip(VERSION_COLUMNS, row, strict=True))
    spec = stored["spec"]
    return {
        "policy_id": stored["policy_id"],
        "version": stored["version"],
        "effective_from": stored["effective_from"],
        "created_at": stored["created_at"],
        "spec": orjson.loads(spec) if isinstance(spec, (str, bytes)) else spec,
    }


def store_versions(tx: Transaction, events: Sequence[Envelope]) -> None:
    """Store the versions the policy events record, in order; those stored already stay."""
    for event in events:
        if event.name in ("Created", "Revised") and "spec" in event.payload:
            _store_version(tx, event)


def _store_version(tx: Transaction, event: Envelope) -> None:
    spec = event.payload["spec"]
    tx.execute(
        f"INSERT INTO sla_policy_versions ({', '.join(VERSION_COLUMNS)})"
        f" VALUES ({', '.join(['%s'] * len(VERSION_COLUMNS))}) ON CONFLICT DO NOTHING",
        [
            event.aggregate_id,
            event.aggregate_version,
            iso(event.occurred_at),
            _created_at(tx, event),
            spec["name"],
            int(spec.get("rank", 0)),
            bool(spec.get("active", True)),
            orjson.dumps(spec).decode(),
            event.actor["id"],
            event.causation_id,
        ],
    )


def _created_at(tx: Transaction, event: Envelope) -> str:
    """When the policy was created: its first version's time (this one's, if it is the
    first or the first is not stored)."""
    if event.name == "Created":
        return iso(event.occurred_at)
    first = tx.execute(
        "SELECT created_at FROM sla_policy_versions WHERE policy_id = %s AND version = 1",
        (event.aggregate_id,),
    ).fetchone()
    return str(first[0]) if first else iso(event.occurred_at)
