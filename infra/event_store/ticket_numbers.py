"""Human-facing incident numbers (INC0001001) from a database sequence.

A failed save leaves a gap in the numbers, as in every ticketing tool; numbers are never
reused, and any number of API instances share one sequence.
"""

from __future__ import annotations

from infra.sql.database import Database

FIRST = 1001


class Numbering:
    def __init__(self, db: Database, prefix: str = "INC", width: int = 7) -> None:
        self.db, self.prefix, self.width = db, prefix, width

    def setup(self) -> None:
        if self.db.dialect == "postgresql":
            self.db.script([f"CREATE SEQUENCE IF NOT EXISTS itsm_incident_number START {FIRST}"])
        else:
            self.db.script(
                [
                    "CREATE TABLE IF NOT EXISTS itsm_incident_numbers"
                    " (n INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " taken_at TEXT DEFAULT CURRENT_TIMESTAMP)",
                ]
            )

    def next(self) -> str:
        with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":
                n = tx.execute("SELECT nextval('itsm_incident_number')").fetchone()[0]
            else:
                n = (
                    tx.execute(
                        "INSERT INTO itsm_incident_numbers DEFAULT VALUES RETURNING n"
                    ).fetchone()[0]
                    + FIRST
                    - 1
                )
        return f"{self.prefix}{int(n):0{self.width}d}"
