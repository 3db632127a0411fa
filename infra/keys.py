"""API keys: each has one role; only a hash of the key is stored."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

from infra.sql import Database


class Role(StrEnum):
    AGENT = "agent"
    MANAGER = "manager"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    INTEGRATION = "integration"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


def _digest(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    def setup(self) -> None:
        self.db.script(["""CREATE TABLE IF NOT EXISTS itsm_api_keys (
            digest TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
            created_at TEXT NOT NULL)"""])

    def create(self, role: Role | str, name: str) -> str:
        """Returns the new key; it cannot be recovered later."""
        role = Role(role)
        key = f"itsm_{secrets.token_urlsafe(32)}"
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO itsm_api_keys (digest, name, role, created_at)"
                       " VALUES (%s, %s, %s, %s)",
                       (_digest(key), name, str(role), datetime.now(timezone.utc).isoformat()))
        return key

    def authenticate(self, key: str) -> Principal | None:
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute("SELECT name, role FROM itsm_api_keys WHERE digest = %s",
                             (_digest(key),)).fetchone()
        return Principal(name=row[0], role=Role(row[1])) if row else None
