"""The composition root: builds every dependency once, each overridable for tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from application.access import API_KEY
from application.desk.errors import ReadModelBehind
from application.desk.practice import Practice
from application.desk.service_desk import ServiceDesk
from application.improvement.practice import IMPROVEMENT
from application.improvement.review_reminders import ReviewReminders
from application.improvement.verification import History, Verification
from application.inbound.inbound_processor import InboundProcessor
from application.inbound.practice import INBOUND
from application.incident.practice import INCIDENT
from application.privacy.erasure import Erasures
from application.privacy.practice import PRIVACY
from application.privacy.retention import Retention
from application.sla.breach_scheduler import SlaScheduler
from application.sla.default_policy import ensure_default_policy
from application.sla.policy_service import SlaPolicies
from application.sla.practice import SLA_POLICY
from application.sla.what_if import WhatIf
from domain.shared_kernel.commands import Rules
from domain.shared_kernel.priority import PriorityMatrix
from infra.access.access_log import AccessLog
from infra.access.api_keys import ApiKeys
from infra.audit.event_chain import ChainedRecorder
from infra.event_store.legacy_topics import register_legacy_topics
from infra.event_store.notification_feed import SOURCE, NotificationFeed
from infra.event_store.orjson_transcoder import OrjsonTranscoder
from infra.event_store.ticket_numbers import LegacyFirstNumbers
from infra.messaging.cloudevents import parse
from infra.operations.readiness import Readiness
from infra.privacy.personal_data_mapper import PersonalDataMapper
from infra.privacy.vault import Vault
from infra.settings import Settings
from infra.sql.database import Database, SqliteDatabase, connect, private_directory
from projections.audit.audit_trail import AuditTrailProjection
from projections.improvement.improvement_register import ImprovementRegisterProjection
from projections.incident import incident_queue
from projections.incident.incident_queue import IncidentsProjection
from projections.kpi.kpi_facts import KpiProjection
from projections.runtime.envelope import Envelope
from projections.runtime.runner import Projection, ProjectionRunner
from projections.sla.sla_clocks import SlaClocksProjection

if TYPE_CHECKING:
    from infra.audit.export import ProvenEvents

# The practices the write path serves: a new practice adds its declaration here.
PRACTICES: list[Practice] = [INCIDENT, SLA_POLICY, INBOUND, API_KEY, IMPROVEMENT, PRIVACY]


def default_projections(settings: Settings | None = None) -> list[Projection]:
    zones = (settings or Settings()).kpi_zones
    return [
        IncidentsProjection(),
        AuditTrailProjection(),
        SlaClocksProjection(),
        KpiProjection(zones, sla_clocks=True),
        ImprovementRegisterProjection(),
    ]


@dataclass
class KafkaProbes:
    """Where the relay and each read model stand on Kafka (metrics, readiness)."""

    relay_position: Callable[[], int]
    consumer_lag: Callable[[], dict[str, int] | None]


@dataclass
class Container:
    settings: Settings
    store_db: Database
    read_db: Database
    desk: ServiceDesk
    keys: ApiKeys
    runners: list[ProjectionRunner]
    sla_policies: SlaPolicies
    what_if: WhatIf
    access_log: AccessLog
    vault: Vault
    feed: NotificationFeed | None = None  # embedded mode: the in-process feed
    kafka: KafkaProbes | None = None  # Kafka mode
    _inbound: InboundProcessor | None = field(default=None, repr=False)

    def sla_scheduler(self) -> SlaScheduler:
        """A new scheduler (docs/sla.md); the caller starts and stops it."""
        return SlaScheduler(self.read_db, self.desk, poll_interval=self.settings.sla_scheduler_poll)

    def review_reminders(self) -> ReviewReminders:
        """A new review reminder scheduler (docs/improvements.md); the caller starts and
        stops it."""
        return ReviewReminders(self.read_db, self.desk)

    @property
    def inbound(self) -> InboundProcessor:
        """One processor per container (it holds the inbound metrics), built on first use."""
        if self._inbound is None:
            self._inbound = InboundProcessor.from_settings(self.desk, self.settings, parse=parse)
        return self._inbound

    def inbound_if_built(self) -> InboundProcessor | None:
        return self._inbound

    @property
    def uses_kafka(self) -> bool:
        return bool(self.settings.kafka_bootstrap)

    def readiness(self) -> Readiness:
        """A readiness probe over this container (it remembers when each read model moved)."""
        return Readiness(self)

    def database_away(self, error: BaseException) -> bool:
        """Whether the error says a database is away for now (503 and retry, not 500)."""
        return self.store_db.unavailable(error) or self.read_db.unavailable(error)

    def feed_positions(self) -> dict[str, int]:
        """Embedded mode: each read model's next position in the store's notification log."""
        return {r.projection.name: r.position(SOURCE, 0) for r in self.runners}

    def runner(self, name: str) -> ProjectionRunner:
        for runner in self.runners:
            if runner.projection.name == name:
                return runner
        known = ", ".join(r.projection.name for r in self.runners)
        raise KeyError(f"no projection named {name!r}; known: {known}")

    def close(self) -> None:
        if self.feed:
            self.feed.stop()
        self.desk.close()
        self.store_db.close()
        self.read_db.close()

    def verification(self) -> Verification:
        """Improvements verified by replay (application/improvement/verification.py)."""
        history = History(
            notifications_after=lambda position, limit: self.desk.recorder.select_notifications(
                position + 1, limit
            ),
            events_of=self.published_events,
            folded=self._kpis_folded,
        )
        return Verification(history, self.read_db)

    def _kpis_folded(self, wait: float = 5.0) -> int:
        """The last log position up to which the KPI read model has folded every event: in
        embedded mode after catching up; on Kafka, what the relay has published once the
        read model's consumers have nothing left to fold (waiting `wait` seconds at most)."""
        if self.feed is not None:
            self.feed.catch_up()
            return self.runner("kpis").position(SOURCE, 0) - 1
        deadline = time.monotonic() + wait
        while (published := self._kafka_folded()) is None:
            if time.monotonic() > deadline:
                raise ReadModelBehind("the KPI read model's consumers are behind the topic")
            time.sleep(0.2)
        return published

    def _kafka_folded(self) -> int | None:
        if self.kafka is None:
            return None
        published = self.kafka.relay_position() - 1
        lag = self.kafka.consumer_lag()
        caught_up = lag is not None and lag.get("kpis", 1) == 0
        return published if caught_up and self.runner("kpis").owed() == 0 else None

    def erasures(self) -> Erasures:
        """Erasing data subjects and reporting what is held about them."""
        return Erasures(self.desk, self.vault)

    def retention(self) -> Retention:
        """Erasing the people whose tickets all ended longer ago than the retention."""

        def tickets(ids: set[str]) -> dict[str, dict[str, Any]]:
            with self.read_db.transaction(read_only=True) as tx:
                return incident_queue.records(tx, ids)

        return Retention(self.erasures(), self.vault.held, tickets)

    def proven_events(self) -> ProvenEvents:
        """Stored events with their proofs (infra/audit/export.py)."""
        from infra.audit.export import ProvenEvents

        recorder = self.desk.recorder
        if not isinstance(recorder, ChainedRecorder):
            raise TypeError("this event store keeps no hash chain")
        return ProvenEvents(self.store_db, recorder.chain.dialect)

    def published_events(self, aggregate_id: str) -> list[Envelope]:
        """One aggregate's stored events as the feeds publish them, for the API to fold as
        the read models fold the feed (its store fallback and `as_of`)."""
        from uuid import UUID

        from eventsourcing.persistence import Notification

        from infra.event_store.publishing import published, to_envelope

        return [  # read by aggregate, not from the log: the position (id) is not known
            published(to_envelope(self.desk.publishing_mapper, Notification(id=0, **vars(stored))))
            for stored in self.desk.recorder.select_events(UUID(aggregate_id))
        ]


def bootstrap(
    settings: Settings | None = None, projections: list[Projection] | None = None
) -> Container:
    register_legacy_topics()
    settings = settings or Settings()
    private_directory(settings.data_dir)
    store_db = connect(settings.store_url)
    read_db = connect(settings.read_url)
    # One lock per database: the read models often live in the store's database.
    read_lock = read_db.schema_lock() if settings.read_url != settings.store_url else nullcontext()
    with store_db.schema_lock(), read_lock:
        return _build(settings, store_db, read_db, projections or default_projections(settings))


def _build(
    settings: Settings, store_db: Database, read_db: Database, projections: list[Projection]
) -> Container:
    vault = Vault(store_db)
    vault.setup()
    desk = ServiceDesk(
        settings.eventsourcing_env(),
        Rules(PriorityMatrix.parse(settings.priority_matrix)),
        PRACTICES,
        transcoder=OrjsonTranscoder(),
        snapshot_interval=settings.snapshot_interval,
        number_prefixes=settings.number_prefixes,
        first_numbers=LegacyFirstNumbers(store_db),
        mapper=lambda transcoder: PersonalDataMapper(transcoder, vault, PRACTICES),
        publishing_mapper=lambda t: PersonalDataMapper(t, vault, PRACTICES, opens=False),
    )
    if isinstance(desk.recorder, ChainedRecorder):
        desk.recorder.adopt()  # the events recorded before the chain existed, if any
    keys = ApiKeys(store_db, desk, vault)
    keys.setup()
    access_log = AccessLog(store_db, vault)
    access_log.setup()
    runners = [ProjectionRunner(read_db, p) for p in projections]
    for runner in runners:
        runner.setup()
    policies = SlaPolicies(desk)
    ensure_default_policy(policies, settings)
    what_if = _what_if(desk, read_db)
    feed, kafka = None, None
    if settings.kafka_bootstrap:
        kafka = _kafka_probes(settings.kafka_bootstrap, settings, store_db, runners)
    else:
        feed = NotificationFeed(
            desk.recorder, desk.publishing_mapper, runners, settings.relay_batch_size
        )
    return Container(
        settings,
        store_db,
        read_db,
        desk,
        keys,
        runners,
        policies,
        what_if,
        access_log,
        vault,
        feed,
        kafka,
    )


def _what_if(desk: ServiceDesk, read_db: Database) -> WhatIf:
    """Replays the history into scratch read models against a draft policy."""

    def replay(runners: list[ProjectionRunner], batch_size: int) -> int:
        feed = NotificationFeed(desk.recorder, desk.publishing_mapper, runners, batch_size)
        return feed.replay_all()

    return WhatIf(replay, lambda: SqliteDatabase(":memory:"), read_db)


def _kafka_probes(
    bootstrap: str, settings: Settings, store_db: Database, runners: list[ProjectionRunner]
) -> KafkaProbes:
    from infra.messaging.consumer_lag import consumer_lag
    from infra.messaging.relay import RelayPosition

    return KafkaProbes(
        RelayPosition(store_db, settings.events_topic).get,
        consumer_lag(bootstrap, settings.events_topic, runners),
    )
