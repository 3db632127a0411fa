"""What an improvement's design, goals, plan and verification may hold: each refusal names
the field, and what is accepted is recorded normalised (stripped, deduplicated, ISO dates,
times in UTC)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from domain.improvement.commands import ReviseDesign, ReviseGoals, RevisePlan
from domain.improvement.design import (
    KPI_NAMES,
    control_table,
    goal_target,
    normalise_design,
    normalise_goals,
    normalise_pinned,
    normalise_plan,
)
from domain.shared_kernel.errors import InvalidValue
from projections.kpi.kpi_queries import KPI_FIELDS
from tests.unit.test_improvement import (
    FEB,
    JAN,
    PINNED,
    action,
    design,
    figures,
    goal,
    in_state,
    plan,
    propose,
    run,
)


def test_the_kpi_names_are_those_of_the_kpi_read_model():
    assert KPI_NAMES == KPI_FIELDS


# -- the design -------------------------------------------------------------------------------


def test_a_design_is_recorded_normalised_with_defaults_for_what_is_not_given():
    clean = normalise_design(
        design(
            name="  Faster first response ",
            team=["ann", "bob", "ann"],
            planned_start=date(2026, 3, 1),
            planned_end="2026-06-30",
            scope={"priorities": ["P1", "P2"], "ticket_types": ["incident"]},
            budget={"amount": 12_000, "currency": "EUR"},
        )
    )
    assert clean["name"] == "Faster first response" and clean["team"] == ["ann", "bob"]
    assert (clean["planned_start"], clean["planned_end"]) == ("2026-03-01", "2026-06-30")
    assert clean["scope"]["priorities"] == ["P1", "P2"] and clean["scope"]["channels"] == []
    assert (
        clean["inputs"] == [] and clean["motivation"] == "" and clean["budget"]["amount"] == 12_000
    )


def test_inputs_are_typed_and_a_kpi_trend_names_its_kpi_and_scope():
    trend = {
        "kind": "kpi_trend",
        "note": "MTTA up 30 % since January",
        "kpi": "mtta_hours",
        "kpi_scope": {"groups": ["network"]},
        "tickets": [{"type": "incident", "ref": "INC0001001"}],
    }
    (clean,) = normalise_design(design(inputs=[trend]))["inputs"]
    assert clean["kpi"] == "mtta_hours" and clean["kpi_scope"]["groups"] == ["network"]
    assert clean["tickets"] == [{"type": "incident", "ref": "INC0001001"}]
    complaint = normalise_design(design(inputs=[{"kind": "complaint"}]))["inputs"][0]
    assert (complaint["kpi"], complaint["kpi_scope"], complaint["note"]) == (None, None, "")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "  "}, "design.name must not be blank"),
        ({"area": "money"}, "design.area must be one of people, resources, technology, process"),
        ({"colour": "red"}, "design has unknown fields: colour"),
        ({"team": "ann"}, "design.team must be a list"),
        ({"team": ["ann", ""]}, r"design.team\[1\] must not be blank"),
        ({"scope": {"priorities": ["P5"]}}, r"design.scope.priorities\[0\] must be one of P1"),
        ({"scope": {"ticket_types": ["ufo"]}}, r"design.scope.ticket_types\[0\] must be one of"),
        ({"scope": {"teams": []}}, "design.scope has unknown fields: teams"),
        ({"planned_start": "2026-02-30"}, r"design.planned_start must be a date \(YYYY-MM-DD\)"),
        ({"planned_start": datetime(2026, 1, 1, tzinfo=UTC)}, "design.planned_start must be"),
        (
            {"planned_start": "2026-03-01", "planned_end": "2026-02-01"},
            "design.planned_end must not be before design.planned_start",
        ),
        ({"budget": {"amount": -1, "currency": "EUR"}}, "design.budget.amount must not be neg"),
        ({"budget": {"amount": math.nan, "currency": "EUR"}}, "design.budget.amount must be a fin"),
        ({"budget": {"amount": 10, "currency": "euro"}}, "design.budget.currency must be an ISO"),
        ({"budget": {"amount": 10}}, "design.budget.currency is required"),
        ({"inputs": [{"kind": "rumour"}]}, r"design.inputs\[0\].kind must be one of kpi_trend"),
        ({"inputs": [{"kind": "kpi_trend"}]}, "a kpi_trend input needs the KPI that trends"),
        (
            {"inputs": [{"kind": "complaint", "kpi": "nps"}]},
            "names a KPI only for a kpi_trend",
        ),
        (
            {"inputs": [{"kind": "kpi_trend", "kpi": "happiness"}]},
            r"design.inputs\[0\].kpi must name a KPI of GET /v1/kpis",
        ),
        (
            {"inputs": [{"kind": "complaint", "tickets": [{"type": "incident"}]}]},
            r"design.inputs\[0\].tickets\[0\].ref is required",
        ),
        ({"motivation": "a\x00b"}, "design.motivation contains a control character"),
    ],
)
def test_a_design_refuses_a_bad_value_naming_the_field(overrides, message):
    with pytest.raises(InvalidValue, match=message):
        normalise_design(design(**overrides))
    with pytest.raises(InvalidValue, match=message):
        propose(**overrides)


def test_a_partial_design_edit_refuses_unknown_fields():
    with pytest.raises(InvalidValue, match="design has unknown fields: colour"):
        run(propose(), ReviseDesign({"colour": "red"}, partial=True))


# -- goals ------------------------------------------------------------------------------------


def test_goal_periods_are_recorded_in_utc():
    berlin = timezone(timedelta(hours=1))
    clean = normalise_goals([goal(baseline={"start": "2026-01-01T01:00:00+01:00", "end": FEB})])
    assert clean[0]["baseline"]["start"] == JAN and clean[0]["baseline"]["start"].tzinfo is UTC
    assert normalise_goals([goal(baseline={"start": JAN.astimezone(berlin), "end": FEB})]) == (
        normalise_goals([goal()])
    )


NAIVE = datetime(2026, 1, 1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kpi": "happiness"}, r"goals\[0\].kpi must name a KPI of GET /v1/kpis"),
        ({"direction": "sideways"}, r"goals\[0\].direction must be one of increase, decrease"),
        ({"target": {"kind": "absolute", "value": math.inf}}, "target.value must be a finite"),
        ({"target": {"kind": "absolute", "value": math.nan}}, "target.value must be a finite"),
        ({"target": {"kind": "absolute", "value": True}}, "target.value must be a number"),
        ({"target": {"kind": "absolute", "value": "2"}}, "target.value must be a number"),
        ({"target": {"kind": "guess", "value": 2}}, "target.kind must be one of absolute"),
        ({"target": {"kind": "relative", "value": 0}}, "a relative target is a fraction above 0"),
        ({"target": {"kind": "relative", "value": 1.5}}, "at most 1"),
        ({"baseline": {"start": FEB, "end": JAN}}, r"goals\[0\].baseline.end must be after"),
        ({"baseline": {"start": JAN, "end": JAN}}, r"goals\[0\].baseline.end must be after"),
        ({"baseline": {"start": NAIVE, "end": FEB}}, "baseline.start needs a timezone"),
        ({"baseline": {"start": "yesterday", "end": FEB}}, "baseline.start must be an ISO 8601"),
        ({"baseline": {"start": JAN}}, r"goals\[0\].baseline.end is required"),
        ({"review": {"start": JAN, "end": FEB}}, r"goals\[0\].review must start at or after"),
        ({"id": " "}, r"goals\[0\].id must not be blank"),
        ({"why": "x"}, r"goals\[0\] has unknown fields: why"),
    ],
)
def test_a_goal_refuses_a_bad_value_naming_the_field(overrides, message):
    with pytest.raises(InvalidValue, match=message):
        run(in_state("accepted"), ReviseGoals([goal(**overrides)]))


def test_an_increase_may_be_relative_by_more_than_the_baseline():
    assert normalise_goals([goal(direction="increase", target={"kind": "relative", "value": 2})])


@pytest.mark.parametrize(
    ("goals", "message"),
    [
        ([], "goals must hold at least one goal"),
        ([goal(), goal()], r"goals\[1\].id 'G1' is given twice"),
        ("G1", "goals must be a list"),
    ],
)
def test_goals_are_one_or_more_each_once(goals, message):
    with pytest.raises(InvalidValue, match=message):
        normalise_goals(goals)


# -- the plan ---------------------------------------------------------------------------------


def test_a_plan_is_recorded_with_defaults_and_new_actions_open():
    clean = normalise_plan(plan(actions=[action("A1", date(2026, 3, 1))]))
    assert clean["actions"] == [
        {
            "id": "A1",
            "title": "do A1",
            "owner": "olivia",
            "due": "2026-03-01",
            "kind": "task",
            "status": "open",
            "reason": "",
        }
    ]
    assert clean["raci"][0] == {"party": "olivia", "kind": "person", "role": "accountable"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"actions": [action("A1", "2026-03-01", owner="")]}, r"actions\[0\].owner must not be"),
        ({"actions": [action("A1", "soon")]}, r"plan.actions\[0\].due must be a date"),
        ({"actions": [action("A1", "2026-03-01", kind="party")]}, "kind must be one of task"),
        ({"actions": [action("A1", "2026-03-01", status="done")]}, "unknown fields: status"),
        (
            {"actions": [action("A1", "2026-03-01"), action("A1", "2026-03-02")]},
            r"plan.actions\[1\].id 'A1' is given twice",
        ),
        ({"raci": [{"party": "olivia", "role": "boss"}]}, r"plan.raci\[0\].role must be one of"),
        (
            {"raci": [{"party": "olivia", "role": "informed", "kind": "robot"}]},
            r"plan.raci\[0\].kind must be one of person, team",
        ),
        (
            {
                "raci": [
                    {"party": "a", "role": "accountable"},
                    {"party": "b", "role": "accountable"},
                ]
            },
            "plan.raci may name one accountable party only",
        ),
        (
            {"raci": [{"party": "a", "role": "consulted"}, {"party": "a", "role": "informed"}]},
            r"plan.raci\[1\].party 'a' is given twice",
        ),
        ({"budget": 5}, "plan has unknown fields: budget"),
    ],
)
def test_a_plan_refuses_a_bad_value_naming_the_field(overrides, message):
    with pytest.raises(InvalidValue, match=message):
        run(in_state("accepted"), RevisePlan(plan(**overrides)))


# -- verification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "target", "baseline", "expected"),
    [
        ("decrease", {"kind": "relative", "value": 0.25}, 4.0, 3.0),
        ("increase", {"kind": "relative", "value": 0.5}, 20, 30.0),
        ("increase", {"kind": "relative", "value": 0.5}, -20, -10.0),  # an NPS below zero
        ("increase", {"kind": "absolute", "value": 0.9}, 0.5, 0.9),
        ("increase", {"kind": "relative", "value": 0.5}, None, None),
        ("increase", {"kind": "absolute", "value": 0.9}, None, 0.9),
    ],
)
def test_the_target_of_a_goal(direction, target, baseline, expected):
    (clean,) = normalise_goals([goal(direction=direction, target=target)])
    assert goal_target(clean, baseline) == expected


def test_the_control_table_keeps_the_figures_and_the_comparison():
    row = {
        **figures(3.0, 2.0),
        "comparison": {
            "baseline": figures(3.0, 3.1)["baseline"],
            "review": figures(3.0, 3.1)["review"],
        },
    }
    (clean,) = control_table(normalise_goals([goal()]), [row])
    assert clean["comparison"]["review"] == {"value": 3.1, "count": 50}
    assert (clean["kpi"], clean["direction"], clean["met"]) == ("mtta_hours", "decrease", True)


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([], r"results need a row for every goal; missing: \['G1'\]"),
        (
            [figures(3.0, 2.0), figures(1, 1, "G9")],
            r"goals the improvement does not have: \['G9'\]",
        ),
        ([figures(3.0, 2.0), figures(3.0, 2.0)], r"results\[1\].goal_id 'G1' is given twice"),
        ([{**figures(3.0, 2.0), "baseline": {"value": 1, "count": -1}}], "baseline.count must be"),
        (
            [{**figures(3.0, 2.0), "review": {"value": math.inf, "count": 1}}],
            "review.value must be a fin",
        ),
        (
            [{"goal_id": "G1", "baseline": {"value": 1, "count": 1}}],
            r"results\[0\].review is required",
        ),
    ],
)
def test_a_verification_refuses_bad_figures_naming_the_field(results, message):
    with pytest.raises(InvalidValue, match=message):
        control_table(normalise_goals([goal()]), results)


def test_pinned_inputs_need_the_log_position_and_kpi_definitions_version():
    assert normalise_pinned({**PINNED, "zone": "Europe/Berlin"})["zone"] == "Europe/Berlin"
    with pytest.raises(InvalidValue, match="pinned.kpi_definitions_version is required"):
        normalise_pinned({"log_position": 1})
    with pytest.raises(InvalidValue, match="pinned.log_position must be a whole number"):
        normalise_pinned({**PINNED, "log_position": -1})
    with pytest.raises(InvalidValue, match="pinned.extra must be text, a number"):
        normalise_pinned({**PINNED, "extra": [1]})
