"""Request and response bodies of `/v1/keys` (docs/access.md).

A key's secret appears in exactly two responses, `POST /v1/keys` and
`POST /v1/keys/{id}/rotate` (`KeySecret`); it is stored only as a hash and cannot be shown
again. Names are checked by the domain (domain/access/api_key.py): after stripping,
non-empty, at most 100 characters, no control characters; a 422 otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.access.api_key import LONGEST_NAME, ApiKey
from domain.access.roles import Role

_EXPIRES = (
    "When the key stops working: an ISO 8601 time (`2027-01-31T00:00:00Z`; UTC without an "
    "offset), a duration from now (`P90D`, `PT12H`, `90d`, `12h`), or null / `never`."
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreate(_Body):
    # Longer than LONGEST_NAME before stripping is the domain's to judge (and word).
    name: str = Field(max_length=4 * LONGEST_NAME, examples=["monitoring-bridge"])
    role: Role
    expires: str | None = Field(default=None, max_length=64, description=_EXPIRES)


class KeyRevoke(_Body):
    reason: str = Field(default="", max_length=1000)


class KeyExpiry(_Body):
    expires: str | None = Field(description=_EXPIRES, max_length=64)


class KeyPublic(BaseModel):
    """A key as anyone may see it: never its secret."""

    id: str
    name: str
    role: Role
    status: Literal["active", "expired", "revoked"]
    generation: int = Field(description="1 when issued, one more per rotation")
    version: int
    issued_at: datetime
    issued_by: str
    expires_at: datetime | None
    rotated_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyPublic:
        return cls(
            id=str(key.id),
            name=key.name,
            role=Role(key.role),
            status=key.status(),  # type: ignore[arg-type]
            generation=key.generation,
            version=key.version,
            issued_at=key.created_on,
            issued_by=key.issued_by,
            expires_at=key.expires_at,
            rotated_at=key.rotated_at,
            revoked_at=key.revoked_at,
        )


class KeySecret(KeyPublic):
    """A key with its new secret: shown once, here, and never again."""

    secret: str = Field(description="`Authorization: Bearer <secret>`; shown only once")
