"""Where a practice's number sequence starts in a store that numbered incidents before.

Incident numbers once came from a database sequence (PostgreSQL `itsm_incident_number`,
SQLite table `itsm_incident_numbers`). A store that has one continues after its last
number, so no number is given twice; every other sequence starts at 1001.
"""

from __future__ import annotations

from application.desk.ticket_numbers import FIRST
from infra.sql.database import Database

_LEGACY = {
    "postgresql": (
        "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END"
        " FROM itsm_incident_number"
    ),
    "sqlite": f"SELECT COALESCE(MAX(n), 0) + {FIRST} FROM itsm_incident_numbers",
}


class LegacyFirstNumbers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def __call__(self, practice: str) -> int:
        if practice != "incident" or not self._has_legacy_sequence():
            return FIRST
        with self.db.transaction(read_only=True) as tx:
            return int(tx.execute(_LEGACY[self.db.dialect]).fetchone()[0])

    def _has_legacy_sequence(self) -> bool:
        postgres = self.db.dialect == "postgresql"
        name = "itsm_incident_number" if postgres else "itsm_incident_numbers"
        query = (
            "SELECT 1 FROM pg_class WHERE relname = %s"
            if postgres
            else "SELECT 1 FROM sqlite_master WHERE name = %s"
        )
        with self.db.transaction(read_only=True) as tx:
            return tx.execute(query, (name,)).fetchone() is not None
