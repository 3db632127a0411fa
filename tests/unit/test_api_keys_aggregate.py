"""The ApiKey aggregate and its rules: names, roles, expiry, revocation, rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from eventsourcing.persistence import Mapper

from application.access import parse_expiry
from domain.access.api_key import LONGEST_NAME, ApiKey, key_name
from domain.access.commands import IssueKey, RevokeKey, RotateKey, SetKeyExpiry
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import IllegalTransition, InvalidValue
from infra.event_store.orjson_transcoder import OrjsonTranscoder
from tests.builders import RULES, ctx

ADMIN = Actor("root-admin")
SOON = datetime.now(UTC) + timedelta(days=30)


def issue(name: str = "bridge", role: str = "integration", **kw) -> ApiKey:
    command = IssueKey(uuid4(), str(uuid4()), name, role, **kw)
    return command.run(None, ctx(by=ADMIN, causation_id="req-1"), RULES)


@pytest.mark.parametrize(
    ("given", "recorded"),
    [
        ("alice", "alice"),
        ("  alice  ", "alice"),
        ("a" * LONGEST_NAME, "a" * LONGEST_NAME),
        ("Zoë (monitoring)", "Zoë (monitoring)"),
    ],
)
def test_names_are_stripped_and_kept(given, recorded):
    assert key_name(given) == recorded
    assert issue(given).name == recorded


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("", "not blank"),
        ("   \t ", "not blank"),
        ("a" * (LONGEST_NAME + 1), "at most 100"),
        ("ali\x00ce", "control"),
        ("ali\nce", "control"),
        ("ali\tce", "control"),
        ("ali\x1bce", "control"),
        ("ali\u0085ce", "control"),
    ],
)
def test_bad_names_are_refused(given, why):
    with pytest.raises(InvalidValue, match=why):
        issue(given)


def test_an_unknown_role_is_refused():
    with pytest.raises(InvalidValue, match="role must be one of"):
        issue(role="root")


def test_issued_records_who_why_and_no_secret():
    key = issue(expires_at=SOON)
    [issued] = key.collect_events()
    assert type(issued).__name__ == "Issued"
    assert issued.by == ADMIN and issued.causation_id == "req-1"
    assert set(vars(issued)) - {
        "originator_id",
        "originator_version",
        "timestamp",
        "originator_topic",
    } == {"name", "role", "expires_at", "secret_id", "by", "causation_id"}
    assert (key.generation, key.status(), key.expires_at) == (1, "active", SOON)


def test_expiry_must_be_aware_and_in_the_future():
    with pytest.raises(InvalidValue, match="in the future"):
        issue(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InvalidValue, match="timezone"):
        issue(expires_at=datetime(2030, 1, 1))
    key = issue(expires_at=datetime.now(UTC) + timedelta(milliseconds=1))
    assert key.status(datetime.now(UTC) + timedelta(seconds=1)) == "expired"


def test_revoke_rotate_and_expiry_are_events_with_actor_and_causation():
    key = issue()
    RotateKey(2, str(uuid4())).run(key, ctx(by=ADMIN, causation_id="req-2"), RULES)
    SetKeyExpiry(SOON).run(key, ctx(by=ADMIN, causation_id="req-3"), RULES)
    SetKeyExpiry(None).run(key, ctx(by=ADMIN, causation_id="req-4"), RULES)
    RevokeKey("left the company").run(key, ctx(by=ADMIN, causation_id="req-5"), RULES)
    events = key.collect_events()
    assert [type(e).__name__ for e in events] == [
        "Issued",
        "Rotated",
        "ExpirySet",
        "ExpirySet",
        "Revoked",
    ]
    assert [e.causation_id for e in events] == ["req-1", "req-2", "req-3", "req-4", "req-5"]
    assert all(e.by == ADMIN for e in events)
    assert (key.generation, key.status(), key.expires_at) == (2, "revoked", None)


def test_a_revoked_key_cannot_be_changed():
    key = issue()
    key.revoke("", ADMIN, "r")
    for command in (RevokeKey(), RotateKey(2, str(uuid4())), SetKeyExpiry(SOON)):
        with pytest.raises(IllegalTransition, match="revoked"):
            command.run(key, ctx(), RULES)


def test_a_rotation_must_name_the_next_generation():
    key = issue()
    with pytest.raises(IllegalTransition, match="rotated meanwhile"):
        RotateKey(3, str(uuid4())).run(key, ctx(), RULES)


def test_an_unchanged_expiry_is_refused():
    key = issue(expires_at=SOON)
    with pytest.raises(IllegalTransition, match="already has that expiry"):
        SetKeyExpiry(SOON).run(key, ctx(), RULES)


def test_events_round_trip_through_the_stores_transcoder():
    key = issue(expires_at=SOON)
    key.rotate(2, str(uuid4()), ADMIN, "r2")
    key.revoke("done", ADMIN, "r3")
    mapper = Mapper(transcoder=OrjsonTranscoder())
    events = key.collect_events()
    copies = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in events]
    assert [vars(c) for c in copies] == [vars(e) for e in events]
    rebuilt = None
    for copy in copies:
        rebuilt = copy.mutate(rebuilt)
    assert rebuilt is not None and rebuilt.__dict__ == key.__dict__


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("P90D", timedelta(days=90)),
        ("PT12H", timedelta(hours=12)),
        ("90d", timedelta(days=90)),
        ("12h", timedelta(hours=12)),
        ("P1W", timedelta(weeks=1)),
        ("30m", timedelta(minutes=30)),
    ],
)
def test_expiry_durations(text, delta):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry(text, now) == now + delta


def test_expiry_times_and_never():
    assert parse_expiry("2027-01-31T00:00:00Z") == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_expiry("2027-01-31T00:00:00") == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_expiry(None) is None and parse_expiry("never") is None
    for bad in ("soon", "P", "PT", "2027-02-30T00:00:00Z", "P1Y"):
        with pytest.raises(InvalidValue, match="expires"):
            parse_expiry(bad)
