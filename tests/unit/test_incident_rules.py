"""Illegal transitions and invalid values are refused, and a refused command records nothing."""

from __future__ import annotations

import pytest

from domain.incident.commands import (
    ACTIONS,
    Acknowledge,
    Assign,
    Cancel,
    Close,
    Comment,
    Escalate,
    Hold,
    LogIncident,
    Recategorise,
    Reopen,
    Reprioritise,
    Resolve,
    Resume,
)
from domain.incident.incident import Incident
from domain.shared_kernel.errors import DomainError, IllegalTransition, InvalidValue
from tests.builders import RULES, ctx, drive, incident_through, log_command


def refused(incident: Incident, command, error: type[Exception], match: str) -> Exception:
    """Run command; assert it raises `error` matching `match` and records no event."""
    incident.collect_events()  # forget the events that built it up
    version = incident.version
    before = dict(vars(incident))
    with pytest.raises(error, match=match) as raised:
        drive(incident, [command])
    assert incident.collect_events() == []
    assert incident.version == version
    assert vars(incident) == before
    return raised.value


def test_resolving_a_closed_incident():
    incident = incident_through([Resolve(code="fixed"), Close(satisfaction=5)])
    refused(
        incident,
        Resolve(code="again"),
        IllegalTransition,
        "^cannot resolve incident INC0001001: it is closed$",
    )


def test_resuming_an_incident_not_on_hold():
    incident = incident_through([Acknowledge()])
    refused(
        incident,
        Resume(),
        IllegalTransition,
        "^cannot resume incident INC0001001: it is in progress$",
    )


def test_acknowledging_twice():
    incident = incident_through([Acknowledge()])
    # The message names the incident but not its state (it says "already acknowledged").
    refused(
        incident, Acknowledge(), IllegalTransition, "^incident INC0001001 was already acknowledged$"
    )


def test_acknowledging_a_resumed_incident_that_was_never_acknowledged():
    incident = incident_through([Hold(reason="awaiting_caller"), Resume()])
    refused(
        incident,
        Acknowledge(),
        IllegalTransition,
        "^cannot acknowledge incident INC0001001: it is in progress$",
    )


@pytest.mark.parametrize(
    "before, state",
    [
        ([], "new"),
        ([Acknowledge()], "in progress"),
        ([Hold(reason="awaiting_vendor")], "on hold"),
    ],
)
def test_reopening_an_open_incident(before, state):
    incident = incident_through(before)
    refused(
        incident, Reopen(), IllegalTransition, f"^cannot reopen incident INC0001001: it is {state}$"
    )


def test_reopening_a_closed_incident():
    incident = incident_through([Resolve(code="x"), Close()])
    refused(
        incident, Reopen(), IllegalTransition, "^cannot reopen incident INC0001001: it is closed$"
    )


@pytest.mark.parametrize(
    "before, state",
    [
        ([], "new"),
        ([Acknowledge()], "in progress"),
        ([Hold(reason="awaiting_vendor")], "on hold"),
        ([Cancel()], "cancelled"),
    ],
)
def test_closing_an_unresolved_incident(before, state):
    incident = incident_through(before)
    refused(
        incident,
        Close(satisfaction=3),
        IllegalTransition,
        f"^cannot close incident INC0001001: it is {state}$",
    )


def test_holding_an_incident_already_on_hold():
    incident = incident_through([Hold(reason="awaiting_vendor")])
    refused(
        incident,
        Hold(reason="awaiting_caller"),
        IllegalTransition,
        "^cannot put on hold incident INC0001001: it is on hold$",
    )


AFTER_CANCEL = [
    (Assign(group="network"), "assign"),
    (Acknowledge(), "acknowledge"),
    (Escalate(kind="functional", group="network"), "escalate"),
    (Escalate(kind="hierarchical"), "escalate"),
    (Hold(reason="awaiting_caller"), "put on hold"),
    (Resume(), "resume"),
    (Resolve(code="fixed"), "resolve"),
    (Reopen(), "reopen"),
    (Close(), "close"),
    (Cancel(), "cancel"),
    (Reprioritise(impact=1, urgency=1), "reprioritise"),
    (Recategorise(category="network"), "recategorise"),
]


def test_the_after_cancel_table_covers_every_command_but_comment():
    assert {type(c).action for c, _ in AFTER_CANCEL} == set(ACTIONS) - {"comment"}


@pytest.mark.parametrize("command, verb", AFTER_CANCEL, ids=lambda v: getattr(v, "action", v))
def test_every_command_after_cancel_except_comment_is_refused(command, verb):
    incident = incident_through([Cancel(reason="duplicate")])
    refused(
        incident,
        command,
        IllegalTransition,
        f"^cannot {verb} incident INC0001001: it is cancelled$",
    )


def test_comment_after_cancel_is_accepted():
    incident = incident_through([Cancel()])
    drive(incident, [Comment(text="closing the loop")])
    assert incident.version == 3


@pytest.mark.parametrize(
    "command, match",
    [
        (
            Assign(group="service-desk", agent="carol"),
            "^incident INC0001001 is already assigned to service-desk$",
        ),
        (
            Reprioritise(impact=2, urgency=2),
            "^incident INC0001001 already has impact 2 and urgency 2$",
        ),
        (
            Recategorise(category="software", subcategory="email"),
            "^incident INC0001001 already has that categorisation$",
        ),
    ],
)
def test_commands_that_would_change_nothing_are_refused(command, match):
    incident = incident_through([Assign(group="service-desk", agent="carol")])
    refused(incident, command, IllegalTransition, match)


# -- invalid values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "impact, urgency, match",
    [
        (0, 1, r"^impact must be 1 \(high\), 2 \(medium\) or 3 \(low\), not 0$"),
        (4, 1, "^impact must be .* not 4$"),
        (1, 0, "^urgency must be .* not 0$"),
        (2, 4, "^urgency must be .* not 4$"),
    ],
)
def test_logging_with_an_impact_or_urgency_outside_1_to_3(impact, urgency, match):
    with pytest.raises(InvalidValue, match=match):
        log_command(impact=impact, urgency=urgency).run("INC1", ctx(), RULES)


@pytest.mark.parametrize("title", ["", "   "])
def test_logging_without_a_title(title):
    with pytest.raises(InvalidValue, match="^an incident needs a title$"):
        log_command(title=title).run("INC1", ctx(), RULES)


def test_logging_with_an_unknown_channel():
    with pytest.raises(
        InvalidValue, match="^channel must be one of phone, email, portal, monitoring, not 'fax'$"
    ):
        log_command(channel="fax").run("INC1", ctx(), RULES)


def test_hold_with_an_unknown_reason():
    incident = incident_through([Acknowledge()])
    refused(
        incident,
        Hold(reason="lunch"),
        InvalidValue,
        "^hold reason must be one of awaiting_caller, awaiting_vendor, awaiting_problem, "
        "awaiting_change, awaiting_evidence, not 'lunch'$",
    )


def test_escalation_of_an_unknown_kind():
    incident = incident_through([Assign(group="network")])
    refused(
        incident,
        Escalate(kind="sideways"),
        InvalidValue,
        "^escalation kind must be one of functional, hierarchical, not 'sideways'$",
    )


def test_invalid_values_are_domain_errors_not_bare_value_errors():
    for command in (Hold(reason="lunch"), Escalate(kind="sideways"), Close(satisfaction=9)):
        incident = incident_through(
            [Acknowledge(), Resolve(code="x")] if isinstance(command, Close) else [Acknowledge()]
        )
        with pytest.raises(DomainError) as raised:
            drive(incident, [command])
        assert not isinstance(raised.value, ValueError)


def test_guard_on_state_comes_before_the_value_check():
    incident = incident_through([Cancel()])
    refused(incident, Hold(reason="lunch"), IllegalTransition, "it is cancelled$")


@pytest.mark.parametrize("score", [0, 6, -1, 10])
def test_satisfaction_outside_1_to_5(score):
    incident = incident_through([Resolve(code="fixed")])
    refused(
        incident,
        Close(satisfaction=score),
        InvalidValue,
        f"^satisfaction is a score from 1 to 5, not {score}$",
    )
    assert incident.state == "resolved"


@pytest.mark.parametrize("impact, urgency", [(0, 1), (4, 2), (1, 0), (3, 4)])
def test_reprioritise_outside_1_to_3(impact, urgency):
    incident = incident_through([Acknowledge()])
    refused(incident, Reprioritise(impact=impact, urgency=urgency), InvalidValue, "must be 1")


@pytest.mark.parametrize(
    "command, match",
    [
        (Assign(group="  "), "^an assignment needs an assignment group$"),
        (Resolve(code=" "), "^a resolution needs a resolution code$"),
        (Comment(text=""), "^a comment needs text$"),
        (Escalate(kind="functional"), "^a functional escalation needs a group to escalate to$"),
    ],
)
def test_missing_required_values(command, match):
    incident = incident_through([Acknowledge()])
    refused(incident, command, InvalidValue, match)


def test_a_refused_log_creates_no_incident():
    with pytest.raises(InvalidValue):
        LogIncident(title="x", caller="y", impact=5, urgency=1).run("INC1", ctx(), RULES)
