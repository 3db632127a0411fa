"""Counting stored events of one kind: the store also holds SLA policies and inbound records."""

from __future__ import annotations


def incident_events(desk) -> int:
    """Incident events in the store, for comparing with the incident read models."""
    count, start = 0, 1
    while batch := desk.recorder.select_notifications(start=start, limit=1000):
        count += sum(1 for n in batch if n.topic.partition(":")[2].startswith("Incident."))
        start = batch[-1].id + 1
    return count
