"""alert.fired / alert.resolved: one incident per open fingerprint; flapping reopens it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from application.inbound.alert_mapper import AlertHandler
from application.inbound.inbound_message import CloudEvent
from domain.shared_kernel.actor import Actor
from tests.unit.test_inbound_source_records import FakeWork

MONITOR = "prometheus://am-1"


def alert(kind: str, n: int, service: str = "mail", check: str = "smtp", **data) -> CloudEvent:
    body = {"service": service, "check": check, "summary": f"{check} down on {service}", **data}
    return CloudEvent(
        id=f"a{n}",
        source=MONITOR,
        type=f"alert.{kind}",
        time=datetime(2026, 5, 1, 10, n, tzinfo=timezone.utc),
        subject=f"{service}/{check}",
        data=body,
    )


@pytest.fixture
def work():
    return FakeWork()


def incidents(work):
    return [a for a in work.store.values() if type(a).__name__ == "Incident"]


def test_a_fired_alert_opens_an_incident_from_monitoring(work):
    effect, incident = AlertHandler().fired(work, alert("fired", 1, severity="critical"))
    assert effect == "opened"
    assert incident.channel == "monitoring" and incident.priority == "P1"
    assert incident.external_ref == "mail/smtp" and incident.source == MONITOR
    logged = incident.collect_events()[0]
    assert logged.by == Actor(MONITOR, "upstream")
    assert logged.at == datetime(2026, 5, 1, 10, 1, tzinfo=timezone.utc)


def test_repeated_firings_attach_to_the_open_incident(work):
    handler = AlertHandler()
    handler.fired(work, alert("fired", 1))
    effects = [handler.fired(work, alert("fired", n))[0] for n in (2, 3)]
    assert effects == ["attached", "attached"] and len(incidents(work)) == 1
    other = handler.fired(work, alert("fired", 4, check="imap"))
    assert other[0] == "opened" and len(incidents(work)) == 2


def test_resolved_adds_a_note_and_resolves_only_by_the_rule(work):
    handler = AlertHandler(auto_resolve=False)
    _, incident = handler.fired(work, alert("fired", 1))
    assert handler.resolved(work, alert("resolved", 2))[0] == "noted"
    assert incident.state == "new"
    assert handler.resolved(work, alert("resolved", 3, auto_resolve=True))[0] == "resolved"
    assert incident.state == "resolved" and incident.resolution_code == "monitoring-recovered"
    auto = AlertHandler(auto_resolve=True)
    _, second = auto.fired(FakeWork(), alert("fired", 4))
    w2 = FakeWork()
    _, second = auto.fired(w2, alert("fired", 4))
    assert auto.resolved(w2, alert("resolved", 5))[0] == "resolved"
    _, third = auto.fired(w2 := FakeWork(), alert("fired", 6))
    assert auto.resolved(w2, alert("resolved", 7, auto_resolve=False))[0] == "noted"


def test_a_flapping_alert_reopens_its_incident_and_never_opens_another(work):
    handler = AlertHandler(auto_resolve=True)
    for n in range(0, 10, 2):
        handler.fired(work, alert("fired", n))
        handler.resolved(work, alert("resolved", n + 1))
    (incident,) = incidents(work)
    assert incident.reopen_count == 4 and incident.state == "resolved"


def test_after_closure_the_next_firing_opens_a_new_incident(work):
    handler = AlertHandler(auto_resolve=True)
    _, first = handler.fired(work, alert("fired", 1))
    handler.resolved(work, alert("resolved", 2))
    first.close(Actor("alice"), "req-1")
    effect, second = handler.fired(work, alert("fired", 3))
    assert effect == "opened" and second.id != first.id
    tracker = next(a for a in work.store.values() if type(a).__name__ == "AlertFingerprint")
    assert tracker.incident_id == str(second.id) and tracker.incidents == 2


def test_a_recovery_without_an_open_incident_changes_nothing(work):
    effect, incident = AlertHandler().resolved(work, alert("resolved", 1))
    assert effect == "no-open-incident" and incident is None and not work.store
