"""Who may do what: the roles, the holder of a key, and API keys as a managed resource.

Keys are `ApiKey` aggregates (domain/access/api_key.py), written through the desk like any
other practice, so every issue, revocation, rotation and expiry change is an audited event.
The secrets live elsewhere: a `KeyTable` (infra/access/api_keys.py) holds the hash of each
secret with its key's id and generation, and which live key holds which name. How the two
stay consistent, and why no secret works without its key's events, is docs/access.md.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from application.desk.errors import NotFound
from application.desk.practice import Practice
from domain.access.api_key import PERSONAL_DATA as API_KEY_PERSONAL_DATA
from domain.access.api_key import ApiKey, key_name
from domain.access.commands import IssueKey, RevokeKey, RotateKey, SetKeyExpiry
from domain.access.roles import Role
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from domain.shared_kernel.value_checks import parse_time

__all__ = [
    "API_KEY",
    "REVOCATION_BOUND_SECONDS",
    "ApiKeyService",
    "IssuedKey",
    "KeyRefusal",
    "KeyNameTaken",
    "KeyNotFound",
    "KeyTable",
    "Access",
    "Principal",
    "Role",
    "parse_expiry",
]

API_KEY = Practice(
    name="api_key",
    aggregates=(ApiKey,),
    noun="API key",
    personal_data={ApiKey: API_KEY_PERSONAL_DATA},
)

# A lookup is served from this process's memory for at most this long: a key revoked,
# rotated or expired on any instance stops working everywhere within it.
REVOCATION_BOUND_SECONDS = 2.0
# A name claimed by a key whose Issued event never came (its writer died in between) is
# free again after this long; a live writer records the event within the desk's 5 s.
STALE_CLAIM_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


@dataclass(frozen=True)
class Access:
    """One read of personal data, as the access log records it (docs/access.md)."""

    key_name: str
    role: str
    action: str  # read_detail, read_as_of, read_timeline, read_audit, export_audit, ...
    resource_type: str
    resource_id: str  # "" for a query over many
    request_id: str
    detail: str = ""  # the query, for reads of many


class KeyNameTaken(IllegalTransition):
    """Another key that is not revoked has that name (a 409)."""


class KeyNotFound(NotFound):
    """No key with that id, or no live key with that name (a 404)."""


@dataclass(frozen=True)
class KeyRefusal:
    """Why a secret does not authenticate: `kind` (missing, unknown, revoked, rotated,
    expired) names the problem type of the 401, `detail` says it to the caller."""

    kind: str
    detail: str


@dataclass(frozen=True)
class IssuedKey:
    """A key and its new secret; the secret is shown once and cannot be recovered."""

    key: ApiKey
    secret: str


class KeyTable(Protocol):
    """Where secrets (as hashes) and the names of live keys are kept."""

    def add_secret(self, digest: str, key_id: UUID, secret_id: str) -> None: ...

    def secret(self, digest: str) -> tuple[UUID, str] | None:
        """(key id, secret id) of the secret with this hash."""
        ...

    def key_ids(self) -> list[UUID]: ...

    def claim(self, name: str, key_id: UUID) -> tuple[UUID, datetime] | None:
        """Claim `name` for `key_id`: None if claimed, else (holder, claimed at)."""
        ...

    def take_over(self, name: str, holder: UUID, key_id: UUID) -> bool:
        """Move the claim from `holder` to `key_id`, if `holder` still has it."""
        ...

    def release(self, name: str, key_id: UUID) -> None: ...

    def holder(self, name: str) -> UUID | None: ...


def digest_of(secret: str) -> str:
    # Secrets are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return f"itsm_{secrets.token_urlsafe(32)}"


_SHORT_DURATION = re.compile(r"^(\d+)\s*([smhdw])$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$",
    re.IGNORECASE,
)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """An expiry as given: an ISO 8601 time (UTC without an offset), an ISO 8601 duration
    from now (P90D, PT12H) or a short one (90d, 12h, 30m); None, '' or 'never': none."""
    if text is None or text.strip().lower() in ("", "never"):
        return None
    text, now = text.strip(), now or datetime.now(UTC)
    short = _SHORT_DURATION.match(text)
    if short:
        return now + timedelta(**{_UNITS[short.group(2).lower()]: int(short.group(1))})
    iso = _ISO_DURATION.match(text)
    if iso and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
        parts = {_UNITS[k]: int(v) for k, v in iso.groupdict().items() if v}
        try:
            return now + timedelta(**parts)
        except OverflowError:
            raise InvalidValue(f"expires {text!r} is too far away") from None
    try:
        return parse_time(text, name="expires")
    except InvalidValue:
        raise InvalidValue(
            f"expires must be an ISO 8601 time (2027-01-31T00:00:00Z), a duration (P90D, "
            f"PT12H, 90d, 12h) or 'never', not {text!r}"
        ) from None


class Desk(Protocol):
    """What keys need of the ServiceDesk (application/desk/service_desk.py)."""

    def create(self, command: Any, ctx: Context) -> Any: ...

    def execute(self, aggregate_id: UUID, command: Any, ctx: Context) -> Any: ...

    def find(self, aggregate_id: Any) -> Any | None: ...


class ApiKeyService:
    """Issue, revoke, rotate and expire keys (admin only, at the edges), and authenticate.

    Order of writes (docs/access.md): a secret's row is written before the event that makes
    it live (Issued, Rotated), and a name is claimed before Issued and released only after
    Revoked. A crash in between leaves a row no event names (inert) or a name still held by
    a revoked key (taken over by the next claim): never a secret that works without its
    events, nor two live keys of one name."""

    def __init__(
        self,
        table: KeyTable,
        desk: Desk,
        ttl: float = REVOCATION_BOUND_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table, self.desk, self.ttl, self._clock = table, desk, ttl, clock
        # digest -> (when the lookup started, key id, holder, expiry)
        self._cache: dict[str, tuple[float, UUID, Principal, datetime | None]] = {}

    # -- managing keys ---------------------------------------------------------------------
    def issue(
        self, name: str, role: Role | str, ctx: Context, expires_at: datetime | None = None
    ) -> IssuedKey:
        name, key_id, secret_id = key_name(name), uuid4(), str(uuid4())
        self._claim(name, key_id)
        secret = new_secret()
        try:
            self.table.add_secret(digest_of(secret), key_id, secret_id)
            key = self.desk.create(IssueKey(key_id, secret_id, name, str(role), expires_at), ctx)
        except BaseException:
            self._release_unless_issued(name, key_id)
            raise
        return IssuedKey(key, secret)

    def adopt(self, digest: str, name: str, role: Role, ctx: Context) -> ApiKey:
        """A key made before keys were aggregates: its Issued event, for the secret its
        holder already has (only its digest is known). Resumable: a secret row an earlier,
        interrupted adoption wrote is reused."""
        key_id, secret_id = self.table.secret(digest) or (uuid4(), str(uuid4()))
        self._claim(key_name(name), key_id)
        self.table.add_secret(digest, key_id, secret_id)
        key: ApiKey = self.desk.create(IssueKey(key_id, secret_id, name, str(role), None), ctx)
        return key

    def adopted(self, digest: str) -> bool:
        """Whether the secret with this digest belongs to a key that exists."""
        row = self.table.secret(digest)
        return row is not None and self.desk.find(row[0]) is not None

    def _release_unless_issued(self, name: str, key_id: UUID) -> None:
        """After a failed issue: free the name unless the key exists after all (an
        ambiguous commit). Unsure (the store away): keep it; a claim of a key that never
        came is free again after STALE_CLAIM_SECONDS. The secret's row stays, inert."""
        try:
            if self.desk.find(key_id) is None:
                self.table.release(name, key_id)
        except Exception:  # the original error is the one to report
            pass

    def create(self, role: Role | str, name: str, ctx: Context | None = None) -> str:
        """Issue a key and return its secret (the bootstrap and tests' shorthand)."""
        return self.issue(name, role, ctx or system_context()).secret

    def revoke(self, key_ref: str | UUID, ctx: Context, reason: str = "") -> ApiKey:
        key = self.get(key_ref)
        if key.revoked:  # a retry after a crash completes the release, then says so
            self.table.release(key.name, key.id)
        key = self.desk.execute(key.id, RevokeKey(reason), ctx)
        self._forget(key.id)
        self.table.release(key.name, key.id)
        return key  # its secrets' rows stay: a caller still using one is told "revoked"

    def rotate(self, key_ref: str | UUID, ctx: Context) -> IssuedKey:
        key = self.get(key_ref)
        secret_id, secret = str(uuid4()), new_secret()
        self.table.add_secret(digest_of(secret), key.id, secret_id)
        key = self.desk.execute(key.id, RotateKey(key.generation + 1, secret_id), ctx)
        self._forget(key.id)
        return IssuedKey(key, secret)  # the old secret's row stays: its caller is told why

    def set_expiry(self, key_ref: str | UUID, expires_at: datetime | None, ctx: Context) -> ApiKey:
        key = self.get(key_ref)
        changed: ApiKey = self.desk.execute(key.id, SetKeyExpiry(expires_at), ctx)
        self._forget(key.id)
        return changed

    def get(self, key_ref: str | UUID) -> ApiKey:
        """The key with this id, or the live key with this name; fresh from the store."""
        key_id = _as_uuid(key_ref)
        if key_id is None:
            key_id = self.table.holder(str(key_ref).strip())
        key = self.desk.find(key_id) if key_id is not None else None
        if isinstance(key, ApiKey) and (_as_uuid(key_ref) is not None or not key.revoked):
            return key
        if _as_uuid(key_ref) is not None:
            raise KeyNotFound(f"no API key with id {key_ref}")
        raise KeyNotFound(f"no live API key named {key_ref!r}; a revoked one is named by its id")

    def list(self) -> list[ApiKey]:
        """Every key issued, revoked ones included, oldest first."""
        keys = [self.desk.find(key_id) for key_id in self.table.key_ids()]
        issued = [k for k in keys if isinstance(k, ApiKey)]
        return sorted(issued, key=lambda k: (k.created_on, str(k.id)))

    def _claim(self, name: str, key_id: UUID) -> None:
        for _ in range(3):  # a claim taken over by another writer meanwhile: look again
            held = self.table.claim(name, key_id)
            if held is None:
                return
            holder, claimed_at = held
            if not self._claim_is_dead(holder, claimed_at):
                raise KeyNameTaken(
                    f"another API key that is not revoked is named {name!r} ({holder}); "
                    "revoke it first or choose another name"
                )
            if self.table.take_over(name, holder, key_id):
                return
        raise KeyNameTaken(f"API key name {name!r} is being claimed by another writer")

    def _claim_is_dead(self, holder: UUID, claimed_at: datetime) -> bool:
        key = self.desk.find(holder)
        if isinstance(key, ApiKey):
            return key.revoked  # its release did not happen (a crash); the name is free
        age = (datetime.now(UTC) - claimed_at).total_seconds()
        return age > STALE_CLAIM_SECONDS  # never issued: its writer died before Issued

    # -- authenticating --------------------------------------------------------------------
    def cached(self, secret: str) -> Principal | None:
        """The key's holder if a lookup that started less than `ttl` seconds ago found it
        and it has not expired since; else None (then `authenticate`)."""
        entry = self._cache.get(digest_of(secret))
        if entry is None or self._clock() - entry[0] >= self.ttl:
            return None
        expires_at = entry[3]
        if expires_at is not None and datetime.now(UTC) >= expires_at:
            return None
        return entry[2]

    def authenticate(self, secret: str) -> Principal | None:
        """The key's holder; None for a secret that is unknown, revoked, rotated away or
        expired (`refusal` says which)."""
        digest = digest_of(secret)
        cached = self.cached(secret)
        if cached is not None:
            return cached
        started = self._clock()  # the entry's age counts from before the store was read
        self._cache.pop(digest, None)
        key, refusal = self._look_up(digest)
        if key is None or refusal is not None:
            return None
        principal = Principal(key.name, Role(key.role))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (started, key.id, principal, key.expires_at)
        return principal

    def _forget(self, key_id: UUID) -> None:
        """This instance drops its own entries of a key it just changed at once; other
        instances within `ttl`."""
        for digest, entry in list(self._cache.items()):
            if entry[1] == key_id:
                self._cache.pop(digest, None)

    def refusal(self, secret: str | None) -> KeyRefusal | None:
        """Why `secret` does not authenticate (None: it does), for the 401's detail."""
        if not secret:
            return KeyRefusal("missing-key", "The API key is missing; " + _SEND)
        return self._look_up(digest_of(secret))[1]

    def _look_up(self, digest: str) -> tuple[ApiKey | None, KeyRefusal | None]:
        """The key a secret belongs to, fresh from the store, and why it is refused."""
        row = self.table.secret(digest)
        key = self.desk.find(row[0]) if row else None
        if row is None or not isinstance(key, ApiKey):
            # No row, or a row whose Issued event never came (its writer died): unknown.
            return None, KeyRefusal("unknown-key", "The API key is unknown; " + _SEND)
        if key.revoked_at is not None:
            when = key.revoked_at.isoformat()
            return key, KeyRefusal(
                "revoked-key", f"The API key {key.name!r} was revoked at {when}."
            )
        if key.secret_id != row[1]:  # rotated away, or a rotation whose event never came
            detail = f"The API key {key.name!r} was rotated; this secret no longer works."
            return key, KeyRefusal("rotated-key", detail)
        if key.expires_at is not None and key.expired():
            detail = (
                f"The API key {key.name!r} expired at {key.expires_at.isoformat()}; "
                "ask an admin to extend its expiry or issue a new key."
            )
            return key, KeyRefusal("expired-key", detail)
        return key, None


_SEND = "send Authorization: Bearer <key>."


def system_context() -> Context:
    """Who acts when keys are issued outside a request (the CLI names its user instead)."""
    from domain.shared_kernel.actor import Actor, ActorKind

    return Context(Actor("itsm", ActorKind.AUTOMATION), causation_id=f"keys-{uuid4()}")


def _as_uuid(value: str | UUID) -> UUID | None:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value.strip())
    except ValueError:
        return None
