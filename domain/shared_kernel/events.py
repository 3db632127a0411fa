"""What every aggregate of the service desk shares."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, TAggregate

from domain.shared_kernel.value_checks import CheckedEvent


class StampedEvent(CheckedEvent, Aggregate.Event):
    """The library stamps modified_on after the mutator runs; stamping it first lets
    mutators record the event's own time (acknowledged_at, resolved_at, ...). Its values
    are checked as it is constructed (`CheckedEvent`)."""

    class_version = 1

    def mutate(self, aggregate: TAggregate | None) -> TAggregate | None:
        if aggregate is not None:
            aggregate.modified_on = self.timestamp
        return super().mutate(aggregate)
