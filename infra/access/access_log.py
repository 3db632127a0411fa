"""The access log: who read which personal data, when, with which key (docs/access.md).

Reads of a ticket's detail, timeline, past state and the audit trail's events and exports
are recorded here, not in the event store: they change no aggregate. The table is in the
event store's database, beside the events (the read database is rebuilt at will), and
nothing in the application updates or deletes its rows. Reads of aggregate KPIs are not
personal data access and are not recorded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from application.access import Access
from infra.privacy.vault import Vault
from infra.sql.database import Database
from projections.runtime.time_text import iso

_COLUMNS = (
    "at",
    "key_name",
    "role",
    "action",
    "resource_type",
    "resource_id",
    "request_id",
    "detail",
)
_FILTERS = {
    "resource_id": "resource_id = %s",
    "resource_type": "resource_type = %s",
    "start": "at >= %s",
    "end": "at < %s",
}


class AccessLog:
    """Who read is kept as their person token (infra/privacy/vault.py): the log still tells
    one reader's accesses apart after their erasure, without their name."""

    def __init__(self, db: Database, vault: Vault) -> None:
        self.db, self.vault = db, vault

    def setup(self) -> None:
        key = (
            "id INTEGER PRIMARY KEY" if self.db.dialect == "sqlite" else "id BIGSERIAL PRIMARY KEY"
        )
        self.db.script(
            [
                f"CREATE TABLE IF NOT EXISTS itsm_access_log ({key}, at TEXT NOT NULL,"
                " key_name TEXT NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,"
                " resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,"
                " request_id TEXT NOT NULL, detail TEXT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS itsm_access_log_resource"
                " ON itsm_access_log (resource_id, id)",
                "CREATE INDEX IF NOT EXISTS itsm_access_log_key ON itsm_access_log (key_name, id)",
            ]
        )

    def record(self, access: Access) -> None:
        row = [iso(datetime.now(UTC)), *[getattr(access, c) for c in _COLUMNS[1:]]]
        row[1] = self.vault.person(access.key_name)
        with self.db.transaction() as tx:
            tx.execute(
                f"INSERT INTO itsm_access_log ({', '.join(_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * len(_COLUMNS))})",
                row,
            )

    def search(self, filters: dict[str, Any], after: int, limit: int) -> list[dict[str, Any]]:
        """The accesses after the id `after`, oldest first; filters combine with AND."""
        where, params = ["id > %s"], [cast(object, after)]
        for name, value in filters.items():
            if name == "key_name" and value is not None:
                where.append("key_name IN (%s, %s)")  # rows of an earlier version: in clear
                params += [value, self.vault.person_token(value)]
            elif value is not None:
                where.append(_FILTERS[name])
                params.append(iso(value) if isinstance(value, datetime) else value)
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                f"SELECT id, {', '.join(_COLUMNS)} FROM itsm_access_log"
                f" WHERE {' AND '.join(where)} ORDER BY id LIMIT %s",
                [*params, limit],
            ).fetchall()
        found = [dict(zip(("id", *_COLUMNS), row, strict=True)) for row in rows]
        return [{**row, "key_name": self.vault.open(row["key_name"])} for row in found]
