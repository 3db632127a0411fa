"""Who may do what: the roles of the service desk and the holder of a key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
