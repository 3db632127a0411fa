"""Commands on API keys: what an admin asks (HTTP `/v1/keys`, `itsm keys`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from domain.access.api_key import ApiKey
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules

PRACTICE = "api_key"


@dataclass(frozen=True)
class IssueKey:
    """The ids are chosen by the caller: the secret's row names them before the key exists."""

    key_id: UUID
    secret_id: str
    name: str
    role: str
    expires_at: datetime | None = None

    practice: ClassVar[str] = PRACTICE

    def run(self, number: str | None, ctx: Context, rules: Rules) -> ApiKey:
        return ApiKey.issue(
            self.key_id,
            self.name,
            self.role,
            self.expires_at,
            self.secret_id,
            ctx.by,
            ctx.causation_id,
        )


@dataclass(frozen=True)
class RevokeKey:
    reason: str = ""

    practice: ClassVar[str] = PRACTICE

    def run(self, key: ApiKey, ctx: Context, rules: Rules) -> None:
        key.revoke(self.reason, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class RotateKey:
    generation: int  # the new secret's: one more than the key's
    secret_id: str

    practice: ClassVar[str] = PRACTICE

    def run(self, key: ApiKey, ctx: Context, rules: Rules) -> None:
        key.rotate(self.generation, self.secret_id, ctx.by, ctx.causation_id)


@dataclass(frozen=True)
class SetKeyExpiry:
    expires_at: datetime | None  # None: never

    practice: ClassVar[str] = PRACTICE

    def run(self, key: ApiKey, ctx: Context, rules: Rules) -> None:
        key.set_expiry(self.expires_at, ctx.by, ctx.causation_id)
