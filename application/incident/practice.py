"""The incident practice: its aggregate, its numbers, the events the SLA clock records."""

from __future__ import annotations

from application.desk.practice import Practice
from domain.incident.incident import PERSONAL_DATA, Incident

INCIDENT = Practice(
    name="incident",
    aggregates=(Incident,),
    number_prefix="INC",
    clock_events=frozenset(Incident.CLOCK_EVENTS),
    snapshots=True,
    personal_data={Incident: PERSONAL_DATA},
)
