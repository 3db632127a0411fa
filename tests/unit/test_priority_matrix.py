"""Impact x urgency -> priority: the default matrix, custom matrices, and reprioritising."""

from __future__ import annotations

import pytest

from domain.incident.commands import Reprioritise
from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.priority import PriorityMatrix
from infra.settings import Settings
from tests.builders import drive, new_incident

DEFAULT = {
    (1, 1): "P1",
    (1, 2): "P2",
    (1, 3): "P3",
    (2, 1): "P2",
    (2, 2): "P3",
    (2, 3): "P4",
    (3, 1): "P3",
    (3, 2): "P4",
    (3, 3): "P4",
}


@pytest.mark.parametrize("impact, urgency", sorted(DEFAULT))
def test_default_matrix_cell(impact, urgency):
    assert PriorityMatrix().priority(impact, urgency) == DEFAULT[impact, urgency]


def test_default_settings_text_parses_to_the_default_matrix():
    assert PriorityMatrix.parse(Settings().priority_matrix) == PriorityMatrix()


@pytest.mark.parametrize("impact, urgency", sorted(DEFAULT))
def test_logging_derives_priority_from_the_matrix(impact, urgency):
    assert new_incident(impact=impact, urgency=urgency).priority == DEFAULT[impact, urgency]


def test_custom_matrix_parsed_from_text():
    matrix = PriorityMatrix.parse(" P1, P1 ,P2; P1,P2,P3 ;P3,P4,P4")
    assert matrix.rows == (("P1", "P1", "P2"), ("P1", "P2", "P3"), ("P3", "P4", "P4"))
    assert [[matrix.priority(i, u) for u in (1, 2, 3)] for i in (1, 2, 3)] == [
        ["P1", "P1", "P2"],
        ["P1", "P2", "P3"],
        ["P3", "P4", "P4"],
    ]
    assert new_incident(impact=2, urgency=1, matrix=matrix).priority == "P1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P1,P2,P3",
        "P1,P2,P3;P2,P3,P4",
        "P1,P2,P3;P2,P3,P4;P3,P4,P4;P4,P4,P4",
        "P1,P2;P2,P3,P4;P3,P4,P4",
        "P1,P2,P3,P4;P2,P3,P4;P3,P4,P4",
        "P1,P2,P3;P2,P3,P4;P3,P4,P5",
        "P0,P2,P3;P2,P3,P4;P3,P4,P4",
        "p1,p2,p3;p2,p3,p4;p3,p4,p4",
        "P1,P2,P3;P2,,P4;P3,P4,P4",
        "P1 P2 P3;P2 P3 P4;P3 P4 P4",
    ],
)
def test_invalid_matrix_text_is_rejected(text):
    with pytest.raises(InvalidValue, match="priority matrix"):
        PriorityMatrix.parse(text)


@pytest.mark.parametrize(
    "rows",
    [
        (("P1", "P2", "P3"), ("P2", "P3", "P4")),
        (("P1", "P2", "P3"), ("P2", "P3", "P4"), ("P3", "P4", "High")),
        (("P1", "P2"), ("P2", "P3", "P4"), ("P3", "P4", "P4", "P4")),
    ],
)
def test_invalid_matrix_rows_are_rejected(rows):
    with pytest.raises(InvalidValue, match="^a priority matrix is 3x3 cells of P1..P4$"):
        PriorityMatrix(rows=rows)


@pytest.mark.parametrize("impact, urgency", [(0, 1), (1, 4), (-1, 2)])
def test_lookup_outside_the_matrix_is_refused(impact, urgency):
    with pytest.raises(InvalidValue):
        PriorityMatrix().priority(impact, urgency)


def test_reprioritise_rederives_priority_from_the_matrix():
    incident = new_incident(impact=3, urgency=3)
    assert incident.priority == "P4"
    drive(incident, [Reprioritise(impact=1, urgency=2, reason="spreading")])
    assert (incident.impact, incident.urgency, incident.priority) == (1, 2, "P2")
    event = incident.pending_events[-1]
    assert (event.impact, event.urgency, event.priority, event.reason) == (1, 2, "P2", "spreading")


def test_reprioritise_uses_the_matrix_it_is_given():
    custom = PriorityMatrix.parse("P1,P1,P1;P2,P2,P2;P3,P3,P3")
    incident = new_incident(impact=3, urgency=1, matrix=custom)
    assert incident.priority == "P3"
    drive(incident, [Reprioritise(impact=2, urgency=3)], matrix=custom)
    assert incident.priority == "P2"


def test_changing_only_urgency_also_rederives_priority():
    incident = new_incident(impact=2, urgency=3)
    drive(incident, [Reprioritise(impact=2, urgency=1)])
    assert incident.priority == "P2"
