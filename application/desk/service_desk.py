"""The service desk application: loads an incident, runs one command, saves its events."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from copy import deepcopy
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    LRUCache,
    ProcessingEvent,
)
from eventsourcing.persistence import IntegrityError, Transcoder

from application.desk.errors import IncidentNotFound, VersionConflict
from application.desk.group_commit import GroupCommit, Item
from application.desk.ticket_numbers import TicketNumbers
from domain.incident.commands import IncidentCommand, LogIncident
from domain.incident.incident import Incident
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.errors import DomainError
from domain.shared_kernel.priority import PriorityMatrix

# A lost race is retried on fresh state until this deadline; only then is it a 409.
RETRY_SECONDS = 5.0


class ServiceDesk(Application[UUID]):
    """Commands in, incidents out. An incident returned by `log_incident` or `execute` is
    also this process's saved copy of it: read it, and change it only with a command."""

    name = "ServiceDesk"
    snapshotting_intervals = {Incident: 50}

    def __init__(
        self,
        env: dict[str, Any],
        numbering: TicketNumbers,
        matrix: PriorityMatrix,
        snapshot_interval: int = 50,
        *,
        transcoder: Transcoder,
    ) -> None:
        self._transcoder = transcoder
        self.snapshotting_intervals = {Incident: snapshot_interval}
        self.numbering, self.matrix = numbering, matrix
        self.commits = GroupCommit(self._save_together, after=self._snapshot_saved)
        super().__init__(env)
        # The incidents this process saved last, as saved. A command starts from one without
        # reading the store: if another process wrote since, its save fails on the version
        # and it runs again on fresh state, so optimistic concurrency still decides.
        size = int(env.get("AGGREGATE_CACHE_MAXSIZE") or 0)
        self._saved: LRUCache[UUID, Incident] | None = LRUCache(size) if size else None

    def _save_together(self, items: Sequence[Item]) -> None:
        """One transaction for the events of several commands (application/desk/group_commit.py):
        what `save` does, for events already collected from their aggregates."""
        processing: ProcessingEvent = ProcessingEvent()
        for aggregate, events in items:
            processing.events.extend(events)
            processing.aggregates[aggregate.id] = aggregate
        self._notify(self._record(processing))

    def _snapshot_saved(self, items: Sequence[Item]) -> None:
        """Snapshots, after the commands were answered, from the incidents as saved.

        The library's way reloads the incident from the store inside the save, and with many
        incidents crossing their interval at once the commands waiting on that group showed
        it as the latency tail. A snapshot at the incident's version after the command is as
        good as one at the interval's multiple."""
        if self.snapshots is None:
            return
        for aggregate, events in items:
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval and any(e.originator_version % interval == 0 for e in events):
                snapshot_class = getattr(type(aggregate), "Snapshot", self.snapshot_class)
                self.snapshots.put([snapshot_class.take(aggregate)])

    def close(self) -> None:
        self.commits.close()
        super().close()

    def construct_transcoder(self) -> Transcoder:
        return self._transcoder

    def log_incident(self, command: LogIncident, ctx: Context) -> Incident:
        incident = command.run(self.numbering.next(), ctx, self.matrix)
        self.commits.save(incident)
        self._remember(incident)
        return incident

    def execute(
        self, incident_id: UUID, command: IncidentCommand, ctx: Context, fresh: bool = False
    ) -> Incident:
        """Run a command; a lost race is retried on fresh state, where an expected version
        (If-Match) is checked again."""
        deadline = time.monotonic() + RETRY_SECONDS
        while time.monotonic() < deadline:
            incident, fresh = self._for_command(incident_id, fresh)
            if not self._attempt(incident, command, ctx, fresh):
                fresh = True
                continue
            try:
                self.commits.save(incident)
            except IntegrityError:
                fresh = True
                time.sleep(random.uniform(0, 0.002))  # so racing writers fall out of lockstep
                continue
            self._remember(incident)
            return incident
        raise VersionConflict(f"incident {incident_id} is changing too fast; try again")

    async def execute_async(
        self, incident_id: UUID, command: IncidentCommand, ctx: Context
    ) -> Incident:
        """`execute` for an event loop. The usual case, an incident this process saved last
        and nobody else changed since, takes no thread: the command runs on the loop and
        awaits its group's commit. Anything else goes the way of `execute`, in a thread."""
        incident = self._saved_copy(incident_id)
        if incident is not None and self._attempt(incident, command, ctx, fresh=False):
            try:
                await self.commits.save_async(incident)
            except IntegrityError:
                pass  # another process wrote first
            else:
                self._remember(incident)
                return incident
        return await asyncio.to_thread(self.execute, incident_id, command, ctx, True)

    def _attempt(
        self, incident: Incident, command: IncidentCommand, ctx: Context, fresh: bool
    ) -> bool:
        """Check and run the command; False when it must be judged again on fresh state.

        An incident as this process last saved it may be behind the store (another process
        wrote since): a stale If-Match or a refusal on it is not final, and only fresh state
        is worth a query for `_check_expected`."""
        try:
            if ctx.expected_version is not None:
                if not fresh and incident.version != ctx.expected_version:
                    return False
                self._check_expected(incident, ctx.expected_version)
            command.run(incident, ctx, self.matrix)
            return True
        except DomainError:
            if fresh:
                raise
            return False

    def _for_command(self, incident_id: UUID, fresh: bool) -> tuple[Incident, bool]:
        """The incident to run a command on, and whether it is fresh from the store."""
        incident = None if fresh else self._saved_copy(incident_id)
        if incident is not None:
            return incident, False
        return self.get_incident(incident_id), True

    def _saved_copy(self, incident_id: UUID) -> Incident | None:
        if self._saved is None:
            return None
        try:
            return deepcopy(self._saved.get(incident_id))
        except KeyError:
            return None

    def _remember(self, incident: Incident) -> None:
        if self._saved is not None:
            self._saved.put(incident.id, incident)

    def _check_expected(self, incident: Incident, expected: int) -> None:
        """The caller saw version `expected`; only the SLA clock may have moved on since.

        A warning or breach recorded by the scheduler changes nothing the caller could have
        edited, so it must not turn an agent's conditional command into a 409."""
        if incident.version == expected:
            return
        if 0 < expected < incident.version and all(
            type(e).__name__ in Incident.CLOCK_EVENTS
            for e in self.events.get(incident.id, gt=expected)
        ):
            return
        raise VersionConflict(
            f"incident {incident.number} is at version {incident.version}, not {expected}, "
            "and was changed meanwhile: reload it and try again"
        )

    def get_incident(self, incident_id: UUID, version: int | None = None) -> Incident:
        try:
            return self.repository.get(incident_id, version=version)
        except AggregateNotFoundError:
            raise IncidentNotFound(f"no incident with id {incident_id}") from None

    def incident_as_of(self, incident_id: UUID, moment: datetime) -> Incident:
        """The incident as it was at `moment`, replayed from the event store."""
        version = None
        for domain_event in self.events.get(incident_id):
            # Imported events count at their source time, as the timeline shows them.
            if (getattr(domain_event, "at", None) or domain_event.timestamp) > moment:
                break
            version = domain_event.originator_version
        if version is None:
            raise IncidentNotFound(f"incident {incident_id} did not exist at {moment.isoformat()}")
        return self.get_incident(incident_id, version=version)

    def stored_events(self) -> int:
        return self.recorder.max_notification_id() or 0
