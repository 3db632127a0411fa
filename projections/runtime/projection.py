"""What a read model is: its tables, the events it folds, and how it folds them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from projections.runtime.envelope import Envelope
from projections.runtime.read_store import Transaction


class Projection(ABC):
    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    # Bump when the tables change shape: setup then drops them and the feed replays from 0.
    schema_version: ClassVar[int] = 1
    # The aggregates whose events it folds ("Incident", ...); None: all of them. Feeds
    # skip the others before decoding them: most of a busy feed is often somebody else's.
    aggregate_types: ClassVar[frozenset[str] | None] = None

    @classmethod
    def wants(cls, event_type: str) -> bool:
        """Whether events of this type ("Incident.Assigned") can change the read model;
        an unknown type ("") may."""
        return (
            cls.aggregate_types is None
            or not event_type
            or event_type.partition(".")[0] in cls.aggregate_types
        )

    @abstractmethod
    def ddl(self) -> Sequence[str]:
        """CREATE TABLE/INDEX IF NOT EXISTS statements."""

    def migrate(self, tx: Transaction) -> None:  # noqa: B027 (optional: most replay instead)
        """Bring rows an earlier version wrote to this version's shape in place, where that
        is cheaper than a replay (a new schema_version replays); run at every set-up, after
        `ddl`, in one transaction, so it must find for itself whether it has work to do."""

    @abstractmethod
    def apply(self, tx: Transaction, event: Envelope) -> None:
        """Fold one event into the read model, inside the caller's transaction."""

    def apply_many(self, tx: Transaction, events: Sequence[Envelope]) -> None:
        """Fold new events, in feed order, inside the caller's transaction.

        Override to batch the SQL (one read and one write per row touched instead of per
        event); the outcome must be the same as `apply` of each event in turn.
        """
        for event in events:
            self.apply(tx, event)

    def catching_up(self, behind: int) -> None:  # noqa: B027 (optional: most fold alike)
        """Told before each batch how many records its feed holds after it: a read model
        may put off, while far behind, work it does better in bulk, if `owed` counts it."""

    def owed(self, tx: Transaction) -> int:
        """How much of its idle work the read model has still to do (the KPIs: batches of
        SLA verdicts not counted yet); readiness adds it to what it is behind the feed."""
        return 0

    def idle(self, tx: Transaction) -> None:  # noqa: B027 (optional: most read models fold only)
        """Work the read model does besides folding events (following another read model),
        in its own transaction, while the feed is quiet and now and then between batches."""
