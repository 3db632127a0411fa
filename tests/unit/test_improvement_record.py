"""improvement_record.fold over published envelopes agrees with the Improvement aggregate,
event by event, for every event type; `as_of` gives the record as it stood at a past
instant."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest
from eventsourcing.domain import DomainEvent

from domain.improvement.improvement import Improvement
from projections.improvement import improvement_record
from projections.improvement.improvement_record import FIELDS, STEPS, fold, replay
from projections.runtime.time_text import iso
from tests.builders import envelopes_of
from tests.builders import replay as mutate
from tests.unit.test_improvement import PATHS, in_state
from tests.unit.test_improvement_round_trip import _lived

# What the aggregate and the record both hold, compared as JSON (the record's values are
# what the feed carries; the aggregate's datetimes become the same ISO text).
SHARED = (
    "number",
    "state",
    "outcome",
    "design",
    "goals",
    "plan",
    "plan_version",
    "approved_version",
    "approved_by",
    "hold_reason",
    "reason",
    "cause_analyses",
    "summary",
    "proposed_by",
)
TIMES = ("approved_at", "closed_at")


def _json(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _aggregate_view(improvement: Improvement) -> dict[str, Any]:
    view = {key: _json(getattr(improvement, key)) for key in SHARED}
    view.update(
        {key: getattr(improvement, key) and iso(getattr(improvement, key)) for key in TIMES}
    )
    verification = improvement.verification
    view["verification"] = verification and {
        **_json({k: v for k, v in verification.items() if k != "at"}),
        "at": iso(verification["at"]),
    }
    view.update(proposed_at=iso(improvement.created_on), updated_at=iso(improvement.modified_on))
    view.update(id=str(improvement.id), version=improvement.version)
    return view


def _record_view(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in (*SHARED, *TIMES, "verification", "proposed_at")} | {
        key: record[key] for key in ("updated_at", "id", "version")
    }


def _histories() -> dict[str, list[DomainEvent]]:
    """Each improvement's events: together they hold every event type of the aggregate."""
    lived = _lived().collect_events()
    ends = {label: in_state(label).collect_events() for label in ("declined", "withdrawn")}
    return {"lived": lived, **ends}


HISTORIES = _histories()


def test_the_histories_hold_every_event_type_and_the_fold_knows_each():
    names = {type(e).__name__ for events in HISTORIES.values() for e in events}
    assert names == set(STEPS)


@pytest.mark.parametrize("label", HISTORIES)
def test_the_fold_agrees_with_the_aggregate_after_every_event(label):
    events = HISTORIES[label]
    record = None
    for count, envelope in enumerate(envelopes_of(events), start=1):
        record = fold(record, envelope)
        aggregate = mutate(events[:count])
        assert _record_view(record) == _aggregate_view(aggregate), envelope.name
        assert set(record) == set(FIELDS)


def test_the_fold_records_the_whole_life_of_an_improvement():
    record = replay(envelopes_of(HISTORIES["lived"]))
    assert record is not None
    assert (record["state"], record["outcome"], record["summary"]) == (
        "closed",
        "partly_successful",
        "half way",
    )
    statuses = {a["id"]: (a["status"], a["reason"]) for a in record["plan"]["actions"]}
    assert statuses == {"A1": ("done", ""), "A2": ("done", ""), "A3": ("dropped", "not needed")}
    assert record["verification"]["number"] == 1 and record["verification"]["by"] == "olivia"
    assert record["cause_analyses"]["G2"]["cause"] == "survey too small"
    assert improvement_record.open_actions(record) == 0
    assert improvement_record.review_date(record) == "2026-05-01T00:00:00.000000Z"


def test_an_edit_after_approval_revokes_it_as_the_event_says():
    events = in_state("on_hold").collect_events()
    envelopes = envelopes_of(events)
    held = replay(envelopes)
    assert held is not None and held["state"] == "on_hold" and held["approved_version"] == 2
    revision = replace(
        envelopes[-1],
        type="Improvement.PlanRevised",
        aggregate_version=held["version"] + 1,
        payload={"plan": held["plan"], "plan_version": 3, "revokes_approval": True},
    )
    after = fold(held, revision)
    assert (after["state"], after["hold_reason"], after["plan_version"]) == ("designed", None, 3)
    assert after["approved_version"] is after["approved_by"] is after["approved_at"] is None


def test_as_of_gives_the_record_as_it_stood_then():
    envelopes = envelopes_of(in_state("in_implementation").collect_events())
    accepted = envelopes[1]
    assert accepted.name == "Accepted"
    # Equal times are possible: count the instant of each event as moved apart.
    spaced = [
        replace(e, occurred_at=accepted.occurred_at + timedelta(hours=i - 1))
        for i, e in enumerate(envelopes)
    ]
    then = improvement_record.as_of(spaced, spaced[1].occurred_at + timedelta(minutes=30))
    assert then is not None
    assert (then["state"], then["version"], then["plan_version"]) == ("accepted", 2, 0)
    assert improvement_record.as_of(spaced, spaced[0].occurred_at - timedelta(seconds=1)) is None
    now = improvement_record.as_of(spaced, spaced[-1].occurred_at)
    assert now is not None and now["state"] == "in_implementation"


def test_an_unknown_event_changes_only_the_version_and_other_aggregates_are_skipped():
    envelopes = envelopes_of(in_state("proposed").collect_events())
    proposed = replay(envelopes)
    assert proposed is not None and improvement_record.was_proposed(proposed)
    later = replace(envelopes[0], type="Improvement.Renamed", aggregate_version=2, payload={})
    after = fold(proposed, later)
    assert {k: v for k, v in after.items() if k not in ("version", "updated_at")} == {
        k: v for k, v in proposed.items() if k not in ("version", "updated_at")
    }
    assert after["version"] == 2
    incident = replace(envelopes[0], type="Incident.Logged")
    assert replay([incident]) is None
    assert not improvement_record.was_proposed(None)


def test_the_paths_cover_each_state():
    # The register filters on these states: each has its fold.
    records = [replay(envelopes_of(in_state(label).collect_events())) for label in PATHS]
    states = {record["state"] for record in records if record is not None}
    assert states == {
        "proposed",
        "accepted",
        "declined",
        "designed",
        "approved",
        "in_implementation",
        "on_hold",
        "in_review",
        "closed",
    }
