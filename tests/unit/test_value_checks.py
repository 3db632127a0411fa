"""The domain's value checks: what an event may record, and that every new event is checked.

Times: the read models format with `iso()` and parse with `datetime.fromisoformat`; both must
round-trip every moment the domain accepts. Text: no control characters but tab and line
breaks, no lone surrogates. Stored history is never refused.
"""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, DomainEvent
from hypothesis import given, settings
from hypothesis import strategies as st

import domain
from domain.inbound.source_ticket import SourceTicket
from domain.incident.incident import Incident
from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.priority import PriorityMatrix, check_level
from domain.shared_kernel.value_checks import (
    INTEGER_LIMIT,
    LONGEST_DURATION,
    TIMES_BEFORE,
    TIMES_FROM,
    CheckedEvent,
    check_duration,
    check_fields,
    check_text,
    parse_time,
)
from domain.sla.sla_policy import LONGEST_REACH, RANK_LIMIT, normalise_spec
from infra.event_store.orjson_transcoder import OrjsonTranscoder
from infra.messaging.cloudevents import INTEGER_FIELDS, SCHEMA_DIR, TIME_FIELDS
from projections.runtime.time_text import iso
from tests.builders import new_incident

PROPERTY = settings(max_examples=300, deadline=None)
ALLOWED_CONTROLS = "\t\n\r"
FORBIDDEN = [chr(c) for c in range(0x20) if chr(c) not in ALLOWED_CONTROLS] + ["\x7f"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
LAST_MOMENT = TIMES_BEFORE - timedelta(microseconds=1)
OFFSETS = st.integers(-24 * 60 + 1, 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
MOMENTS = st.datetimes(
    min_value=TIMES_FROM.replace(tzinfo=None), max_value=LAST_MOMENT.replace(tzinfo=None)
).map(lambda naive: naive.replace(tzinfo=UTC))
ZONED = st.tuples(MOMENTS, OFFSETS).map(lambda pair: pair[0].astimezone(pair[1]))
AT = datetime(2024, 3, 1, 10, tzinfo=UTC)


# -- times -------------------------------------------------------------------------------------


@PROPERTY
@given(ZONED)
def test_iso_round_trips_every_accepted_moment_through_fromisoformat(moment):
    text = iso(moment)
    assert len(text) == len("2024-03-01T10:00:00.000000Z")
    assert datetime.fromisoformat(text) == moment


@PROPERTY
@given(ZONED, ZONED)
def test_iso_text_order_is_time_order(a, b):
    assert (iso(a) < iso(b)) == (a < b)


@PROPERTY
@given(ZONED)
def test_the_domain_parses_what_it_formats_and_the_store_keeps_it(moment):
    assert parse_time(moment.isoformat()) == moment
    assert parse_time(iso(moment)) == moment
    transcoder = OrjsonTranscoder()
    assert transcoder.decode(transcoder.encode({"at": moment})) == {"at": moment}


@pytest.mark.parametrize(
    "moment",
    [TIMES_FROM, LAST_MOMENT, datetime(1970, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))],
)
def test_the_edges_of_the_range_are_accepted(moment):
    assert parse_time(moment.isoformat()) == moment


@pytest.mark.parametrize(
    "text",
    [
        "0226-11-29T10:00:00Z",
        "9999-12-31T23:59:59Z",
        "1969-12-31T23:59:59.999999Z",
        "2200-01-01T00:00:00Z",
        "1970-01-01T00:30:00+01:00",
    ],
)
def test_moments_outside_the_range_are_refused(text):
    with pytest.raises(InvalidValue, match="out of range"):
        parse_time(text)


@pytest.mark.parametrize(
    "text",
    [
        "2016-13-01T10:00:00Z",
        "2016-02-30T10:00:00Z",
        "2016-03-01T25:00:00Z",
        "2016-03-01T10:00:00+25:00",
        "2012-00-10",
        "2016-03-01T10:61:00",
        "yesterday",
        "",
    ],
)
def test_dates_that_do_not_exist_are_refused_not_raised_as_value_errors(text):
    with pytest.raises(InvalidValue, match="opened_at .* is not a time that exists"):
        parse_time(text, name="opened_at")


def test_a_time_without_an_offset_is_in_the_default_zone():
    plus_two = timezone(timedelta(hours=2))
    assert parse_time("2016-03-01 10:00", plus_two) == datetime(2016, 3, 1, 8, tzinfo=UTC)
    assert parse_time("2016-03-01t10:00:00z") == datetime(2016, 3, 1, 10, tzinfo=UTC)


def test_a_naive_moment_is_refused_in_an_event():
    with pytest.raises(InvalidValue, match="at needs a timezone"):
        check_fields({"at": datetime(2024, 3, 1)})


# -- text --------------------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(FORBIDDEN)))


@PROPERTY
@given(TEXT)
def test_text_without_control_characters_is_accepted(text):
    assert check_text("title", text) == text
    check_fields({"title": text, "snapshot": {text: [text]}})


@PROPERTY
@given(TEXT, st.sampled_from(FORBIDDEN + SURROGATES), TEXT)
def test_one_control_character_or_lone_surrogate_anywhere_is_refused(before, bad, after):
    with pytest.raises(InvalidValue, match=f"U\\+{ord(bad):04X} at position {len(before)}"):
        check_text("title", before + bad + after)
    with pytest.raises(InvalidValue, match="^snapshot.title contains"):
        check_fields({"snapshot": {"title": before + bad + after}})


def test_tab_and_line_breaks_are_text():
    assert check_text("notes", "a\tb\nc\r\nd") == "a\tb\nc\r\nd"


def test_text_the_domain_accepts_can_be_stored():
    """Every accepted string encodes as UTF-8 (PostgreSQL, orjson), unlike a lone surrogate."""
    text = "naïve — 日本 🎉 \t\n"
    check_text("title", text)
    assert orjson.loads(orjson.dumps(text)) == text
    with pytest.raises(TypeError):
        orjson.dumps("a\ud800b")


# -- numbers and durations ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [INTEGER_LIMIT + 1, -INTEGER_LIMIT - 1, 10**30])
def test_integers_beyond_what_json_consumers_hold_are_refused(value):
    with pytest.raises(InvalidValue, match="mod_count is out of range"):
        check_fields({"mod_count": value})
    check_fields({"mod_count": INTEGER_LIMIT, "other": -INTEGER_LIMIT})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_numbers_must_be_finite(value):
    with pytest.raises(InvalidValue, match="threshold must be a finite number"):
        check_fields({"threshold": value})


@pytest.mark.parametrize(
    "seconds",
    [0, -1, LONGEST_DURATION.total_seconds() + 1, float("nan"), float("inf"), True, "3600"],
)
def test_durations_are_positive_and_bounded(seconds):
    with pytest.raises(InvalidValue, match="positive number of seconds, at most 366 days"):
        check_duration("targets.resolve.P1", seconds)


@pytest.mark.parametrize("level", [2.0, True, 0, 4])
def test_a_level_is_an_int_from_1_to_3(level):
    with pytest.raises(InvalidValue):
        PriorityMatrix().priority(level, 2)


# -- SLA policies ------------------------------------------------------------------------------


def _spec(**changes) -> dict:
    return {"name": "Mail", "targets": {"resolve": {"*": 3600}}, **changes}


@pytest.mark.parametrize(
    "targets",
    [
        {"resolve": {"*": 999_999_999 * 86400}},  # P999999999D
        {"resolve": {"P1": LONGEST_DURATION.total_seconds() + 1}},
        {"respond": {"*": float("nan")}},
    ],
)
def test_sla_targets_are_bounded(targets):
    with pytest.raises(InvalidValue, match="at most 366 days"):
        normalise_spec(_spec(targets=targets))


def test_the_longest_target_is_accepted_on_a_24x7_calendar():
    longest = int(LONGEST_DURATION.total_seconds())
    spec = normalise_spec(_spec(targets={"resolve": {"*": longest}}, ola={"net": {"*": longest}}))
    assert spec["targets"]["resolve"]["*"] == longest


def test_a_target_must_fall_due_within_reach_on_its_calendar():
    sparse = {"timezone": "UTC", "week": {"mon": [["09:00", "09:01"]]}}  # a minute a week
    normalise_spec(_spec(calendar=sparse, targets={"resolve": {"*": 60}}))
    with pytest.raises(InvalidValue, match=f"would not fall due within {LONGEST_REACH.days}"):
        normalise_spec(_spec(calendar=sparse, targets={"resolve": {"*": 86400}}))


@pytest.mark.parametrize("rank", [RANK_LIMIT + 1, -RANK_LIMIT - 1])
def test_a_rank_fits_the_read_models_integer_column(rank):
    with pytest.raises(InvalidValue, match="rank must be an integer"):
        normalise_spec(_spec(rank=rank))


# -- every new event is checked ----------------------------------------------------------------


def _aggregates() -> list[type[Aggregate]]:
    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)
    found, todo = [], list(Aggregate.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("domain."):
            found.append(cls)
    return found


def test_every_event_class_of_every_aggregate_checks_its_values():
    aggregates = _aggregates()
    assert {a.__name__ for a in aggregates} >= {
        "Incident",
        "SlaPolicy",
        "SourceTicket",
        "InboundReceipt",
        "AlertFingerprint",
    }
    for aggregate in aggregates:
        for name, value in vars(aggregate).items():
            if isinstance(value, type) and issubclass(value, DomainEvent):
                assert issubclass(value, CheckedEvent), f"{aggregate.__name__}.{name}"


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("title", "a\x00b", "title contains a control character"),
        ("caller", "bob\x1b[31m", "caller contains a control character"),
        ("description", "x\ud800", "description contains a lone surrogate"),
        ("at", datetime(226, 11, 29, 10, tzinfo=UTC), "at is out of range: 0226-11-29"),
        ("at", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), "at is out of range: 9999"),
    ],
)
def test_logging_with_a_poison_value_records_nothing(field, value, message):
    with pytest.raises(InvalidValue, match=message):
        new_incident(**{field: value}) if field != "at" else Incident.log(
            number="INC1",
            title="t",
            caller="c",
            impact=2,
            urgency=2,
            matrix=PriorityMatrix(),
            by=Actor("alice"),
            causation_id="r",
            at=value,
        )


@pytest.mark.parametrize(
    "command",
    [
        lambda i: i.comment("a\x00b", False, Actor("alice"), "r"),
        lambda i: i.assign("net\x07", None, Actor("alice"), "r"),
        lambda i: i.resolve("fixed", "notes", Actor("al\x00ice"), "r"),
        lambda i: i.acknowledge(Actor("alice"), "r\x7f"),
        lambda i: i.hold(
            "awaiting_caller", Actor("alice"), "r", at=datetime(1969, 7, 20, tzinfo=UTC)
        ),
        lambda i: i.cancel("dup", Actor("alice"), "r", at=datetime(2024, 1, 1)),
    ],
)
def test_a_command_with_a_poison_value_changes_nothing(command):
    incident = new_incident()
    incident.collect_events()
    before = dict(vars(incident))
    with pytest.raises(InvalidValue):
        command(incident)
    assert vars(incident) == before and incident.pending_events == []


def test_a_nested_value_is_named_by_its_path():
    snapshot = {"ref": "INC1", "assignee": None, "title": "a\x00"}
    with pytest.raises(InvalidValue, match="^snapshot.title contains"):
        SourceTicket(
            source="sn",
            ref="INC1",
            incident_id="x",
            mod_count=1,
            snapshot=snapshot,
            event_id="e1",
            at=AT,
        )
    with pytest.raises(InvalidValue, match="^by.id contains"):
        new_incident(by=Actor("a\x00"))
    with pytest.raises(InvalidValue, match=r"^snapshot.'a\\x00' \(a key\) contains"):
        check_fields({"snapshot": {"a\x00": 1}})
    with pytest.raises(InvalidValue, match="^spec.warnings.1 must be a finite"):
        check_fields({"spec": {"warnings": [50, float("nan")]}})


# -- stored history is never refused -----------------------------------------------------------


class _Desk(Application):
    def construct_transcoder(self):
        return OrjsonTranscoder()


def test_events_stored_before_the_checks_still_load(monkeypatch):
    app = _Desk(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    # A poison incident as stored before the rules existed: recorded with the checks off.
    with monkeypatch.context() as unchecked:
        unchecked.setattr(CheckedEvent, "__post_init__", lambda self: None)
        incident = Incident.log(
            number="INC1",
            title="a\x00b",
            caller="c",
            impact=2,
            urgency=2,
            matrix=PriorityMatrix(),
            by=Actor("alice"),
            causation_id="r",
            at=datetime(226, 11, 29, tzinfo=UTC),
        )
        app.save(incident)
    loaded = app.repository.get(incident.id)
    assert (loaded.title, loaded.opened_at.year) == ("a\x00b", 226)
    # ... and new events on it are checked, their own values only.
    loaded.comment("still works", False, Actor("alice"), "r2", at=AT)
    app.save(loaded)
    assert app.repository.get(incident.id).version == 2


# -- the inbound data's time and integer fields follow the schemas -----------------------------


def test_the_inbound_time_and_integer_fields_are_the_schemas():
    for kind in ("alert.fired", "alert.resolved", "incident.snapshot"):
        schema = orjson.loads((SCHEMA_DIR / f"{kind}.schema.json").read_bytes())
        properties = schema["properties"]
        times = {
            name
            for name, sub in properties.items()
            if sub.get("$ref") in ("#/$defs/time", "#/$defs/optional_time")
        }
        assert set(TIME_FIELDS.get(kind, ())) == times, kind
        assert set(INTEGER_FIELDS.get(kind, ())) == {
            name for name, sub in properties.items() if _integer(schema, sub)
        }, kind


def _integer(schema: dict, sub: dict) -> bool:
    if "$ref" in sub:
        sub = schema["$defs"][sub["$ref"].removeprefix("#/$defs/")]
    kinds = sub.get("type", [])
    values = [v for v in sub.get("enum", []) if v is not None]
    return "integer" in kinds or bool(values) and all(type(v) is int for v in values)


def test_levels_are_checked_strictly():
    assert check_level("impact", 1) == 1
    with pytest.raises(InvalidValue):
        check_level("impact", 1.0)


def test_text_longer_than_the_limit_is_refused_and_the_limit_itself_is_accepted():
    from domain.shared_kernel.value_checks import LONGEST_TEXT, check_fields

    check_fields({"description": "x" * LONGEST_TEXT})
    with pytest.raises(InvalidValue, match="description is 65537 characters long"):
        check_fields({"description": "x" * (LONGEST_TEXT + 1)})
    with pytest.raises(InvalidValue, match="snapshot.title is 65537 characters long"):
        check_fields({"snapshot": {"title": "x" * (LONGEST_TEXT + 1)}})
