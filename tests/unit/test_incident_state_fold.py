"""incident_record.fold over published envelopes agrees with the aggregate, event by event."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from domain.incident.commands import Assign, Cancel, Hold
from projections.incident import incident_record
from projections.incident.incident_record import FIELDS, changes, fold, was_logged
from projections.runtime.envelope import Envelope
from projections.runtime.time_text import iso
from tests.builders import (
    FULL_LIFECYCLE,
    envelopes_of,
    incident_through,
    lifecycle_events,
    replay,
)

SHARED = (
    "state",
    "priority",
    "assignment_group",
    "assignee",
    "tier",
    "major",
    "reassignment_count",
    "reopen_count",
    "hold_reason",
    # also carried by both
    "number",
    "title",
    "description",
    "caller",
    "channel",
    "service",
    "category",
    "subcategory",
    "impact",
    "urgency",
    "resolution_code",
    "satisfaction",
)
TIMES = ("acknowledged_at", "resolved_at", "closed_at")


def _fold_all(envelopes):
    state = None
    for envelope in envelopes:
        state = fold(state, envelope)
    return state


def _aggregate_view(incident) -> dict:
    view = {k: getattr(incident, k) for k in SHARED}
    view.update({k: getattr(incident, k) and iso(getattr(incident, k)) for k in TIMES})
    return view


def _fold_view(state) -> dict:
    return {k: state[k] for k in (*SHARED, *TIMES)}


def test_fold_of_a_full_lifecycle_equals_the_aggregate():
    events = incident_through(FULL_LIFECYCLE).collect_events()
    state = _fold_all(envelopes_of(events))
    incident = replay(events)
    assert _fold_view(state) == _aggregate_view(incident)
    assert state["version"] == incident.version == len(FULL_LIFECYCLE) + 1
    assert state["id"] == str(incident.id)
    assert state["updated_at"] == iso(incident.modified_on)
    assert state["opened_at"] == iso(incident.created_on)


def test_fold_equals_the_aggregate_after_every_event():
    events = lifecycle_events()  # full lifecycle + a cancelled incident
    envelopes = envelopes_of(events)
    states: dict[str, dict] = {}
    for index, envelope in enumerate(envelopes):
        states[envelope.aggregate_id] = fold(states.get(envelope.aggregate_id), envelope)
        own = [e for e in events[: index + 1] if str(e.originator_id) == envelope.aggregate_id]
        aggregate = replay(own)
        assert _fold_view(states[envelope.aggregate_id]) == _aggregate_view(aggregate), (
            f"after {envelope.type} v{envelope.aggregate_version}"
        )


def test_fold_of_a_cancelled_incident_stamps_cancelled_at():
    events = incident_through([Hold(reason="awaiting_caller"), Cancel()]).collect_events()
    envelopes = envelopes_of(events)
    state = _fold_all(envelopes)
    assert (state["state"], state["hold_reason"]) == ("cancelled", None)
    assert state["cancelled_at"] == iso(envelopes[-1].occurred_at)


def test_fold_ignores_unknown_event_types_but_takes_their_version():
    events = incident_through([Assign(group="network")]).collect_events()
    envelopes = envelopes_of(events)
    state = _fold_all(envelopes)
    unknown = Envelope(
        event_id="e",
        type="Incident.LinkedToProblem",
        aggregate_id=envelopes[0].aggregate_id,
        aggregate_version=3,
        schema_version=1,
        occurred_at=envelopes[-1].occurred_at + timedelta(seconds=1),
        actor={"id": "a", "kind": "person"},
        causation_id="c",
        payload={"problem": "PRB1"},
    )
    after = fold(state, unknown)
    assert {k: v for k, v in after.items() if k not in ("version", "updated_at")} == {
        k: v for k, v in state.items() if k not in ("version", "updated_at")
    }
    assert after["version"] == 3
    assert state["version"] == 2  # fold does not mutate its input


def test_changes_lists_fields_before_and_after():
    events = incident_through(
        [Assign(group="service-desk", agent="carol"), Assign(group="network")]
    ).collect_events()
    logged, first, second = envelopes_of(events)
    s1 = fold(None, logged)
    s2 = fold(s1, first)
    s3 = fold(s2, second)
    assert changes(s1, s2) == [
        {"field": "assignment_group", "before": None, "after": "service-desk"},
        {"field": "assignee", "before": None, "after": "carol"},
    ]
    assert changes(s2, s3) == [
        {"field": "assignment_group", "before": "service-desk", "after": "network"},
        {"field": "assignee", "before": "carol", "after": None},
        {"field": "reassignment_count", "before": 0, "after": 1},
    ]


def test_changes_from_nothing_lists_every_field_but_bookkeeping():
    events = incident_through([]).collect_events()
    state = fold(None, envelopes_of(events)[0])
    listed = changes(None, state)
    fields = [c["field"] for c in listed]
    # fields that start as None do not change from None, so they are not listed
    assert set(fields) == {k for k, v in state.items() if v is not None} - {
        "version",
        "updated_at",
        "id",
    }
    assert {"number", "state", "priority", "tier", "major", "opened_at"} <= set(fields)
    assert "assignment_group" not in fields
    assert all(c["before"] is None and c["after"] == state[c["field"]] for c in listed)


def test_changes_of_an_event_that_changes_nothing_is_empty():
    state = {"id": "x", "state": "new", "version": 1, "updated_at": "a"}
    assert changes(state, {**state, "version": 2, "updated_at": "b"}) == []


def test_iso_is_fixed_width_utc():
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert iso(moment) == "2024-01-02T01:04:05.000000Z"


def _envelope(name: str, version: int, occurred_at: datetime, **payload) -> Envelope:
    return Envelope(
        event_id=f"e{version}",
        type=f"Incident.{name}",
        aggregate_id="i1",
        aggregate_version=version,
        schema_version=1,
        occurred_at=occurred_at,
        actor={"id": "opener", "kind": "person"},
        causation_id="c",
        payload=payload,
        recorded_at=datetime(2026, 5, 1, tzinfo=timezone.utc),
    )


def test_an_imported_incident_opened_when_it_opened_at_the_source_not_when_recorded():
    at_source = datetime(2016, 3, 1, 9, tzinfo=timezone.utc)
    logged = _envelope("Logged", 1, at_source, number="INC1", title="t", priority="P3")
    record = incident_record.replay([logged])
    assert record["opened_at"] == record["updated_at"] == "2016-03-01T09:00:00.000000Z"
    assert tuple(record) == FIELDS  # the whole public document, nothing else


def test_replay_knows_an_incident_only_from_its_logged_event():
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert incident_record.replay([]) is None and not was_logged(None)
    assert not was_logged(
        incident_record.replay([_envelope("Commented", 2, moment, text="x", public=False)])
    )
    assert was_logged(
        incident_record.replay([_envelope("Logged", 1, moment, number="INC1", priority="P3")])
    )
