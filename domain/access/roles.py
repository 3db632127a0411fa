"""The roles of the service desk: each API key carries one."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    MANAGER = "manager"
    ANALYST = "analyst"
    AUDITOR = "auditor"
    INTEGRATION = "integration"
    ADMIN = "admin"
