"""What every aggregate of the service desk shares."""
from __future__ import annotations

from eventsourcing.domain import Aggregate


class StampedEvent(Aggregate.Event):
    """The library stamps modified_on after the mutator runs; stamping it first lets
    mutators record the event's own time (acknowledged_at, resolved_at, ...)."""

    class_version = 1

    def mutate(self, aggregate):
        if aggregate is not None:
            aggregate.modified_on = self.timestamp
        return super().mutate(aggregate)
