"""Every event (and a snapshot) survives the orjson transcoder unchanged; v1 Logged upcasts."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import StoredEvent

from domain.incident.incident import Incident
from domain.shared_kernel.actor import Actor, ActorKind
from infra.event_store.orjson_transcoder import OrjsonTranscoder, dumps, loads
from tests.builders import (
    FULL_LIFECYCLE,
    all_incident_event_classes,
    drive,
    lifecycle_events,
    mapper,
    new_incident,
    replay,
)

EVENTS = lifecycle_events()


def test_the_lifecycle_emits_every_event_class_of_the_incident():
    emitted = {type(e) for e in EVENTS}
    assert emitted == all_incident_event_classes()
    assert len(emitted) == 15  # Logged + 12 command events + 2 SLA events


def test_the_event_class_set_excludes_only_the_abstract_base_and_unused_created():
    nested = {
        name
        for name, value in vars(Incident).items()
        if isinstance(value, type) and issubclass(value, Incident.Event)
    }
    assert nested - {c.__name__ for c in all_incident_event_classes()} == {"Event", "Created"}


@pytest.mark.parametrize(
    "event", EVENTS, ids=lambda e: f"{e.originator_version}-{type(e).__name__}"
)
def test_event_round_trips_field_by_field(event):
    m = mapper()
    stored = m.to_stored_event(event)
    assert isinstance(stored.state, bytes)
    copy = m.to_domain_event(stored)
    assert type(copy) is type(event)
    assert vars(copy) == vars(event)
    for key, value in vars(event).items():
        assert type(vars(copy)[key]) is type(value), key
    assert isinstance(copy.timestamp, datetime) and copy.timestamp.tzinfo is not None
    assert copy.timestamp.utcoffset() == event.timestamp.utcoffset()
    assert isinstance(copy.by, Actor) and isinstance(copy.by.kind, ActorKind)


def test_every_event_carries_an_actor_and_a_causation_id():
    for event in EVENTS:
        assert isinstance(event.by, Actor)
        assert event.causation_id


def test_datetimes_and_actors_are_stored_tagged_not_as_bare_strings():
    event = EVENTS[0]
    raw = orjson.loads(mapper().to_stored_event(event).state)
    assert raw["timestamp"] == {"$dt": event.timestamp.isoformat()}
    assert raw["by"] == {"$actor": ["alice", "person"]}
    assert raw["class_version"] == Incident.Logged.class_version >= 2


def test_transcoder_round_trips_nested_values():
    moment = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    value = {
        "at": moment,
        "who": Actor("x", ActorKind.UPSTREAM),
        "list": [moment, 1, "s", None],
        "nested": {"deep": {"by": Actor("y")}},
        "flag": True,
        "n": 1.5,
    }
    assert loads(dumps(value)) == value
    transcoder = OrjsonTranscoder()
    assert transcoder.decode(transcoder.encode(value)) == value


def test_transcoder_refuses_unknown_types():
    # orjson re-raises the tagger's TypeError as its own JSONEncodeError (a TypeError).
    with pytest.raises(TypeError, match="not JSON serializable: set"):
        dumps({"x": {1, 2}})


def test_aggregate_rebuilt_from_round_tripped_events_equals_the_original():
    m = mapper()
    copies = [m.to_domain_event(m.to_stored_event(e)) for e in EVENTS[:-2]]
    rebuilt = replay(copies)
    original = replay(EVENTS[:-2])
    assert vars(rebuilt) == vars(original)
    assert rebuilt.state == "closed" and rebuilt.major is True


def test_snapshot_round_trip_of_an_aggregate():
    incident = drive(new_incident(), FULL_LIFECYCLE)
    snapshot = Snapshot.take(incident)
    m = mapper()
    copy = m.to_domain_event(m.to_stored_event(snapshot))
    assert type(copy) is Snapshot
    assert vars(copy) == vars(snapshot)
    for key in ("_created_on", "_modified_on", "acknowledged_at", "resolved_at", "closed_at"):
        assert isinstance(copy.state[key], datetime) and copy.state[key].tzinfo is not None
    restored = copy.mutate(None)
    assert isinstance(restored, Incident)
    expected = {k: v for k, v in vars(incident).items() if k != "_pending_events"}
    assert {k: v for k, v in vars(restored).items() if k != "_pending_events"} == expected


# -- upcasting ------------------------------------------------------------------------------


def _v1_logged(event) -> StoredEvent:
    """The stored form a v1 Logged event had: no channel and no class_version key.

    Fields added by later versions (v3's `at`) did not exist in v1 either.
    """
    m = mapper()
    current = m.to_stored_event(event)
    state = orjson.loads(current.state)
    del state["channel"], state["class_version"]
    state.pop("at", None)
    return StoredEvent(
        originator_id=current.originator_id,
        originator_version=current.originator_version,
        topic=current.topic,
        state=orjson.dumps(state),
    )


def test_v1_logged_event_decodes_as_v2_with_channel_phone():
    logged = new_incident(channel="email").collect_events()[0]
    stored = _v1_logged(logged)
    assert b"channel" not in stored.state and b"class_version" not in stored.state
    upcast = mapper().to_domain_event(stored)
    assert type(upcast) is Incident.Logged
    assert upcast.channel == "phone"
    assert "class_version" not in vars(upcast)
    assert {k: v for k, v in vars(upcast).items() if k != "channel"} == {
        k: v for k, v in vars(logged).items() if k != "channel"
    }


def test_whole_aggregate_rebuilds_from_a_v1_logged_event():
    # Up to and including the reprioritisation, so the priority re-derivation is replayed too.
    events = drive(new_incident(channel="email"), FULL_LIFECYCLE[:8]).collect_events()
    m = mapper()
    stored = [_v1_logged(events[0]), *(m.to_stored_event(e) for e in events[1:])]
    rebuilt = replay([m.to_domain_event(s) for s in stored])
    assert rebuilt.channel == "phone"
    original = replay(events)
    assert {k: v for k, v in vars(rebuilt).items() if k != "channel"} == {
        k: v for k, v in vars(original).items() if k != "channel"
    }
    assert rebuilt.version == 9 and rebuilt.priority == "P1"
