"""The ApiKey aggregate: one API key's life, from issue to revocation, every step audited.

The secret and its hash are never in an event (events are published to Kafka and kept for
ever): the lookup table of infra/access holds the hash of each secret with the key's id and
a `secret_id`, a random id (text) drawn for that secret, not derived from it. A secret works only
while its key's aggregate exists, is not revoked, has not expired and names that secret id
as its current one (`Issued`, then each `Rotated`): application/access.py.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.access.roles import Role
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.personal_data import PersonalData
from domain.shared_kernel.value_checks import CheckedEvent, check_text, check_time, parse_choice

LONGEST_NAME = 100
# Stricter than text in general: a name is an actor id in the audit trail, one line.
_NAME_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def key_name(name: str) -> str:
    """The name as recorded (stripped), or InvalidValue: non-empty, at most LONGEST_NAME
    characters, no control characters (tab and line breaks included)."""
    if not isinstance(name, str):
        raise InvalidValue(f"a key name must be text, not {name!r}")
    clean = name.strip()
    if not clean:
        raise InvalidValue("a key needs a name that is not blank")
    if len(clean) > LONGEST_NAME:
        raise InvalidValue(f"a key name may be at most {LONGEST_NAME} characters, not {len(clean)}")
    bad = _NAME_CONTROL.search(clean)
    if bad is not None:
        raise InvalidValue(
            f"a key name may hold no control characters (U+{ord(bad.group()):04X} "
            f"at position {bad.start()})"
        )
    return check_text("name", clean)


def key_expiry(expires_at: datetime | None, now: datetime | None = None) -> datetime | None:
    """None (never expires) or a timezone-aware moment after `now`, in UTC."""
    if expires_at is None:
        return None
    check_time("expires_at", expires_at)
    if expires_at <= (now or datetime.now(UTC)):
        raise InvalidValue(f"expires_at must be in the future, not {expires_at.isoformat()}")
    return expires_at.astimezone(UTC)


class ApiKey(Aggregate):
    """`secret_id` names the key's current secret; `generation` counts them: 1 when
    issued, one more per rotation."""

    class Event(StampedEvent):
        pass

    class Issued(CheckedEvent, Aggregate.Created):
        class_version = 1
        name: str
        role: str
        expires_at: datetime | None
        secret_id: str
        by: Actor
        causation_id: str

    @event(Issued)
    def __init__(
        self,
        name: str,
        role: str,
        expires_at: datetime | None,
        secret_id: str,
        by: Actor,
        causation_id: str,
    ) -> None:
        self.name, self.role, self.expires_at = name, role, expires_at
        self.secret_id, self.generation = secret_id, 1
        self.issued_by = by.id
        self.rotated_at: datetime | None = None
        self.revoked_at: datetime | None = None

    @classmethod
    def issue(
        cls,
        key_id: UUID,
        name: str,
        role: str,
        expires_at: datetime | None,
        secret_id: str,
        by: Actor,
        causation_id: str,
    ) -> ApiKey:
        """A new key with the ids its secret's row already names (application/access.py)."""
        return cls._create(
            cls.Issued,
            id=key_id,
            name=key_name(name),
            role=parse_choice(Role, "role", role),
            expires_at=key_expiry(expires_at),
            secret_id=secret_id,
            by=by,
            causation_id=causation_id,
        )

    # -- what the key is now -------------------------------------------------------------
    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and (now or datetime.now(UTC)) >= self.expires_at

    def status(self, now: datetime | None = None) -> str:
        if self.revoked:
            return "revoked"
        return "expired" if self.expired(now) else "active"

    def _require_live(self, action: str) -> None:
        if self.revoked:
            raise IllegalTransition(f"cannot {action} API key {self.name!r}: it is revoked")

    # -- commands --------------------------------------------------------------------------
    def revoke(self, reason: str, by: Actor, causation_id: str) -> None:
        self._require_live("revoke")
        self._revoked(reason.strip(), by, causation_id)

    @event("Revoked")
    def _revoked(self, reason: str, by: Actor, causation_id: str) -> None:
        self.revoked_at = self.modified_on

    def rotate(self, generation: int, secret_id: str, by: Actor, causation_id: str) -> None:
        """A new secret, `secret_id`, the key's `generation`th; the one before stops
        working. `generation` must be the next one: of two rotations racing, the second is
        refused."""
        self._require_live("rotate")
        if generation != self.generation + 1:
            raise IllegalTransition(
                f"API key {self.name!r} was rotated meanwhile (it is at generation "
                f"{self.generation}, not {generation - 1}); rotate it again"
            )
        self._rotated(generation, secret_id, by, causation_id)

    @event("Rotated")
    def _rotated(self, generation: int, secret_id: str, by: Actor, causation_id: str) -> None:
        self.generation, self.secret_id = generation, secret_id
        self.rotated_at = self.modified_on

    def set_expiry(self, expires_at: datetime | None, by: Actor, causation_id: str) -> None:
        """A new expiry (None: never); it applies to the key's current secret too."""
        self._require_live("set the expiry of")
        expires_at = key_expiry(expires_at)
        if expires_at == self.expires_at:
            raise IllegalTransition(f"API key {self.name!r} already has that expiry")
        self._expiry_set(expires_at, by, causation_id)

    @event("ExpirySet")
    def _expiry_set(self, expires_at: datetime | None, by: Actor, causation_id: str) -> None:
        self.expires_at = expires_at


# A key is named for the person (or the system) that holds it, and that name is who acted in
# the audit trail: it is recorded as the holder's person token.
PERSONAL_DATA = PersonalData(
    subject_field="", people={"Issued": ("name",)}, snapshot_people=("name", "issued_by")
)
