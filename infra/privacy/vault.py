"""The key store of personal data: one AES-GCM key per data subject (docs/privacy.md).

A data subject is known by a pseudonym: a keyed hash (HMAC-SHA-256 with this store's
secret) of how the person is named (an incident's caller), so the same caller gets the
same subject everywhere without their name being kept. A field of theirs is stored as a
token, `pii:1:<subject>:<nonce and ciphertext, base64url>`, which only their key opens.

Erasing a subject deletes its key and keeps the row as a tombstone (when, by whom, why):
every token of theirs then reads as "[erased]", in the event store, its snapshots, Kafka
and any read model, while the bytes (and so the hash chain) stay as they were.

Keys are cached for at most KEY_CACHE_SECONDS: an erasure made by one process is in force
in every other within that bound.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.shared_kernel.actor import Actor
from domain.shared_kernel.personal_data import ERASED
from infra.sql.database import Database
from projections.runtime.time_text import iso

KEY_CACHE_SECONDS = 2.0
PREFIX = "pii:1:"
PERSON = "pid:1:"  # a person named (an agent, an actor): the same token wherever they are
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TOKEN = re.compile(rf"pii:1:({_UUID}):([A-Za-z0-9_-]+)")
ANY_TOKEN = re.compile(rf"(?:pii:1:({_UUID}):([A-Za-z0-9_-]+))|(?:pid:1:({_UUID}))")
_TOKEN_BYTES = re.compile(ANY_TOKEN.pattern.encode())
_REMEMBERED = 100_000


class Vault:
    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        self.db, self.clock = db, clock
        self._pepper = b""
        self._keys: dict[str, tuple[float, bytes | None]] = {}  # subject -> (read at, key)
        self._subjects: dict[str, str] = {}  # aggregate id -> subject
        self._people: dict[str, str] = {}  # a person's name -> their token, once recorded
        self._names: dict[str, str] = {}  # a person's subject -> their name, sealed
        self._lock = threading.Lock()

    def setup(self) -> None:
        blob = "BLOB" if self.db.dialect == "sqlite" else "BYTEA"
        self.db.script(
            [
                "CREATE TABLE IF NOT EXISTS pii_settings (name TEXT PRIMARY KEY,"
                f" value {blob} NOT NULL)",
                f"CREATE TABLE IF NOT EXISTS pii_subjects (subject TEXT PRIMARY KEY, key {blob},"
                " created_at TEXT NOT NULL, erased_at TEXT, erased_by TEXT, reason TEXT,"
                " legal_basis TEXT)",
                "CREATE TABLE IF NOT EXISTS pii_aggregate_subjects (aggregate_id TEXT PRIMARY KEY,"
                " subject TEXT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS pii_aggregate_subjects_subject"
                " ON pii_aggregate_subjects (subject)",
                # A person's name, sealed with their key: what their person token opens to.
                "CREATE TABLE IF NOT EXISTS pii_names (subject TEXT PRIMARY KEY,"
                " sealed TEXT NOT NULL)",
            ]
        )
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO pii_settings (name, value) VALUES ('pepper', %s)"
                " ON CONFLICT (name) DO NOTHING",
                [os.urandom(32)],
            )
            self._pepper = bytes(
                tx.execute("SELECT value FROM pii_settings WHERE name = 'pepper'").fetchone()[0]
            )

    # -- subjects ------------------------------------------------------------------------------
    def pseudonym(self, kind: str, name: str) -> str:
        """The subject a person named `name` (as a `kind`: caller) is known by."""
        normal = " ".join(name.split()).casefold()
        digest = hmac.new(self._pepper, f"{kind}:{normal}".encode(), hashlib.sha256).digest()
        return str(uuid.UUID(bytes=digest[:16]))

    def current(self, kind: str, name: str) -> str:
        """The subject a person's data go to now: their pseudonym, or, once that one was
        erased, the one after it (someone erased who calls again starts afresh)."""
        subject = self.pseudonym(kind, name)
        with self.db.transaction(read_only=True) as tx:
            while True:
                row = tx.execute(
                    "SELECT key IS NULL FROM pii_subjects WHERE subject = %s", [subject]
                ).fetchone()
                if row is None or not row[0]:
                    return subject
                subject = str(uuid.uuid5(uuid.UUID(subject), "after-erasure"))

    def subject_of(self, aggregate_id: str) -> str | None:
        """The subject whose data an aggregate's events hold (None: recorded before)."""
        known = self._subjects.get(aggregate_id)
        if known is not None:
            return known
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT subject FROM pii_aggregate_subjects WHERE aggregate_id = %s",
                [aggregate_id],
            ).fetchone()
        if row is not None:
            self._remember(aggregate_id, str(row[0]))
        return str(row[0]) if row else None

    def enrol(self, aggregate_id: str, subject: str) -> None:
        """The aggregate's data are the subject's from now on; the subject gets a key."""
        known = self._keys.get(subject)
        with self.db.transaction() as tx:
            if known is None or known[1] is None:  # a subject this process has not keyed yet
                tx.execute(
                    "INSERT INTO pii_subjects (subject, key, created_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT (subject) DO NOTHING",
                    [subject, AESGCM.generate_key(bit_length=256), iso(datetime.now(UTC))],
                )
            tx.execute(
                "INSERT INTO pii_aggregate_subjects (aggregate_id, subject) VALUES (%s, %s)"
                " ON CONFLICT (aggregate_id) DO UPDATE SET subject = excluded.subject",
                [aggregate_id, subject],
            )
        self._remember(aggregate_id, subject)

    def _remember(self, aggregate_id: str, subject: str) -> None:
        with self._lock:
            if len(self._subjects) > _REMEMBERED:
                self._subjects.clear()
            self._subjects[aggregate_id] = subject

    # -- people named in events (agents, actors) -----------------------------------------------
    def person(self, name: str) -> str:
        """The token a person named in an event is recorded as: the same for the same person
        everywhere (so the audit trail's actor filter and the KPIs by agent still work), and
        opening to their name only while their key exists."""
        known = self._people.get(name)
        # Another process may have erased them since: the key's cache bounds how long a
        # token of theirs is still written.
        if known is not None and self.key(known[len(PERSON) :]) is not None:
            return known
        subject = self.current("person", name)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO pii_subjects (subject, key, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (subject) DO NOTHING",
                [subject, AESGCM.generate_key(bit_length=256), iso(datetime.now(UTC))],
            )
        sealed = self.seal(subject, name)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO pii_names (subject, sealed) VALUES (%s, %s)"
                " ON CONFLICT (subject) DO NOTHING",
                [subject, sealed],
            )
        token = f"{PERSON}{subject}"
        with self._lock:
            if len(self._people) > _REMEMBERED:
                self._people.clear()
            self._people[name] = token
        return token

    def person_token(self, name: str) -> str:
        """The token a filter on this person's name looks for (nothing is recorded)."""
        return f"{PERSON}{self.current('person', name)}"

    def _person_opened(self, subject: str) -> str:
        sealed = self._names.get(subject)
        if sealed is None:
            with self.db.transaction(read_only=True) as tx:
                row = tx.execute(
                    "SELECT sealed FROM pii_names WHERE subject = %s", [subject]
                ).fetchone()
            if row is None:
                return ERASED
            sealed = self._names[subject] = str(row[0])  # sealed for good: kept
        return self.open(sealed)

    # -- keys ----------------------------------------------------------------------------------
    def key(self, subject: str) -> bytes | None:
        """The subject's key; None once erased (or never made)."""
        cached = self._keys.get(subject)
        if cached is not None and self.clock() - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT key FROM pii_subjects WHERE subject = %s", [subject]
            ).fetchone()
        key = bytes(row[0]) if row and row[0] is not None else None
        with self._lock:
            if len(self._keys) > _REMEMBERED:
                self._keys.clear()
            self._keys[subject] = (self.clock(), key)
        return key

    def erase(self, subject: str, by: str, reason: str, legal_basis: str) -> bool:
        """Delete the subject's key; False if there was none to delete."""
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT key FROM pii_subjects WHERE subject = %s" + self.db.for_update, [subject]
            ).fetchone()
            if row is None or row[0] is None:
                return False
            tx.execute(
                "UPDATE pii_subjects SET key = NULL, erased_at = %s, erased_by = %s,"
                " reason = %s, legal_basis = %s WHERE subject = %s",
                [iso(datetime.now(UTC)), by, reason, legal_basis, subject],
            )
        self._keys.pop(subject, None)
        with self._lock:
            self._people = {n: t for n, t in self._people.items() if not t.endswith(subject)}
        return True

    def held(self) -> dict[str, list[str]]:
        """Every subject whose key still exists, with the aggregates holding their data."""
        with self.db.transaction(read_only=True) as tx:
            rows = tx.execute(
                "SELECT s.subject, a.aggregate_id FROM pii_subjects s"
                " JOIN pii_aggregate_subjects a ON a.subject = s.subject"
                " WHERE s.key IS NOT NULL ORDER BY s.subject"
            ).fetchall()
        held: dict[str, list[str]] = {}
        for subject, aggregate_id in rows:
            held.setdefault(str(subject), []).append(str(aggregate_id))
        return held

    def status(self, subject: str) -> dict[str, Any] | None:
        with self.db.transaction(read_only=True) as tx:
            row = tx.execute(
                "SELECT key IS NOT NULL, created_at, erased_at, erased_by, reason, legal_basis"
                " FROM pii_subjects WHERE subject = %s",
                [subject],
            ).fetchone()
            aggregates = tx.execute(
                "SELECT aggregate_id FROM pii_aggregate_subjects WHERE subject = %s"
                " ORDER BY aggregate_id",
                [subject],
            ).fetchall()
        if row is None:
            return None
        names = ("has_key", "created_at", "erased_at", "erased_by", "reason", "legal_basis")
        return {**dict(zip(names, row, strict=True)), "aggregates": [a[0] for a in aggregates]}

    # -- tokens --------------------------------------------------------------------------------
    def seal(self, subject: str, value: str) -> str:
        key = self.key(subject)
        if key is None:  # erased: what would be written is unreadable already
            return ERASED
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(nonce, value.encode(), subject.encode())
        return f"{PREFIX}{subject}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, token: str) -> str:
        """A token's clear text, ERASED if its key is gone; any other text as it is."""
        match = ANY_TOKEN.fullmatch(token)
        return self._opened(match) if match else token

    def _opened(self, match: re.Match[str]) -> str:
        if match.group(3):
            return self._person_opened(match.group(3))
        subject, body = match.group(1), match.group(2)
        key = self.key(subject)
        if key is None:
            return ERASED
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], subject.encode()).decode()
        except (InvalidTag, ValueError):
            return ERASED

    def reveal_json(self, body: bytes) -> bytes:
        """A JSON text with every token opened, each clear text escaped as a JSON string's
        content (a token itself holds nothing JSON escapes)."""
        if PREFIX.encode() not in body and PERSON.encode() not in body:
            return body
        matches = list(_TOKEN_BYTES.finditer(body))
        people = {m.group(3).decode() for m in matches if m.group(3)}
        self._prefetch({(m.group(1) or m.group(3)).decode() for m in matches}, people)
        return _TOKEN_BYTES.sub(self._opened_json, body)

    def _prefetch(self, subjects: set[str], people: set[str]) -> None:
        """The keys (and people's sealed names) of an answer's subjects that are not fresh
        in the cache, in one query each, rather than one per subject as they are opened."""
        now = self.clock()
        stale = sorted(s for s in subjects if now - self._read_at(s) >= KEY_CACHE_SECONDS)
        for chunk in _chunks(stale):
            rows = self._rows("SELECT subject, key FROM pii_subjects", chunk)
            keys = {str(subject): bytes(key) if key is not None else None for subject, key in rows}
            with self._lock:
                self._keys.update({s: (now, keys.get(s)) for s in chunk})
        for chunk in _chunks(sorted(s for s in people if s not in self._names)):
            rows = self._rows("SELECT subject, sealed FROM pii_names", chunk)
            self._names.update({str(subject): str(sealed) for subject, sealed in rows})

    def _read_at(self, subject: str) -> float:
        cached = self._keys.get(subject)
        return -math.inf if cached is None else cached[0]

    def _rows(self, select: str, subjects: list[str]) -> list[tuple[Any, ...]]:
        with self.db.transaction(read_only=True) as tx:
            return list(
                tx.execute(
                    f"{select} WHERE subject IN ({', '.join(['%s'] * len(subjects))})", subjects
                ).fetchall()
            )

    def _opened_json(self, match: re.Match[bytes]) -> bytes:
        clear = self.open(match.group(0).decode())
        return json.dumps(clear, ensure_ascii=False)[1:-1].encode()

    def reveal(self, value: Any) -> Any:
        """A document with every token opened (dicts, lists, text and actors, at any
        depth)."""
        if isinstance(value, str):
            if PREFIX in value or PERSON in value:
                return ANY_TOKEN.sub(self._opened, value)
            return value
        if isinstance(value, Actor):
            return Actor(self.open(value.id), value.kind) if PERSON in value.id else value
        if isinstance(value, dict):
            return {k: self.reveal(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.reveal(v) for v in value]
        return value


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
