"""The composition root: builds every dependency once, each overridable for tests."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

from domain.shared_kernel.priority import PriorityMatrix
from application.desk.service_desk import ServiceDesk
from infra.access.api_keys import ApiKeys
from infra.event_store.legacy_topics import register_legacy_topics
from infra.event_store.notification_feed import NotificationFeed
from infra.event_store.ticket_numbers import Numbering
from infra.messaging.cloudevents import parse
from infra.settings import Settings
from infra.event_store.orjson_transcoder import OrjsonTranscoder
from infra.sql.database import Database, connect
from projections.runtime.runner import Projection, ProjectionRunner
from projections.incident.incident_queue import IncidentsProjection
from projections.kpi.kpi_facts import KpiProjection
from projections.sla.sla_clocks import SlaClocksProjection
from projections.audit.incident_timeline import TimelineProjection
from typing import Any
from application.inbound.inbound_processor import InboundProcessor


def default_projections() -> list[Projection]:
    return [IncidentsProjection(), TimelineProjection(), SlaClocksProjection(), KpiProjection()]


@dataclass
class Container:
    settings: Settings
    store_db: Database
    read_db: Database
    desk: ServiceDesk
    keys: ApiKeys
    runners: list[ProjectionRunner]
    feed: NotificationFeed | None = None
    extras: dict = field(default_factory=dict)

    @property
    def uses_kafka(self) -> bool:
        return bool(self.settings.kafka_bootstrap)

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


def bootstrap(settings: Settings | None = None,
              projections: list[Projection] | None = None) -> Container:
    register_legacy_topics()
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store_db = connect(settings.store_url)
    read_db = connect(settings.read_url)
    # One lock per database: the read models often live in the store's database.
    read_lock = read_db.schema_lock() if settings.read_url != settings.store_url \
        else nullcontext()
    with store_db.schema_lock(), read_lock:
        return _build(settings, store_db, read_db, projections or default_projections())


def _build(settings: Settings, store_db: Database, read_db: Database,
           projections: list[Projection]) -> Container:
    numbering = Numbering(store_db, prefix=settings.incident_number_prefix)
    keys = ApiKeys(store_db)
    desk = ServiceDesk(settings.eventsourcing_env(), numbering,
                       PriorityMatrix.parse(settings.priority_matrix), settings.snapshot_interval,
                       transcoder=OrjsonTranscoder())
    numbering.setup()
    keys.setup()
    runners = [ProjectionRunner(read_db, p) for p in projections]
    for runner in runners:
        runner.setup()
    sla = _sla_extras(settings, desk, read_db)
    if not settings.kafka_bootstrap:
        feed = NotificationFeed(desk.recorder, desk.mapper, runners, settings.relay_batch_size)
        return Container(settings, store_db, read_db, desk, keys, runners, feed, extras=sla)
    return Container(settings, store_db, read_db, desk, keys, runners,
                     extras={**_kafka_probes(settings, store_db, runners), **sla})


def _sla_extras(settings: Settings, desk: ServiceDesk, read_db: Database) -> dict:
    """SLA policies (the default one created once) and a scheduler factory (docs/sla.md)."""
    from application.sla.default_policy import ensure_default_policy
    from application.sla.policy_service import SlaPolicies
    from application.sla.breach_scheduler import SlaScheduler

    from application.sla.what_if import WhatIf
    from infra.sql.database import SqliteDatabase

    policies = SlaPolicies(desk)
    ensure_default_policy(policies, settings)

    def replay(runners: list[ProjectionRunner], batch_size: int) -> int:
        return NotificationFeed(desk.recorder, desk.mapper, runners, batch_size).replay_all()

    return {"sla_policies": policies, "sla_scheduler": lambda: SlaScheduler(
        read_db, desk, poll_interval=settings.sla_scheduler_poll),
        "what_if": WhatIf(replay, lambda: SqliteDatabase(":memory:"), read_db)}


def _kafka_probes(settings: Settings, store_db: Database, runners: list[ProjectionRunner]) -> dict:
    from infra.messaging.consumer_lag import consumer_lag
    from infra.messaging.relay import RelayPosition

    return {"relay_position": RelayPosition(store_db, settings.events_topic).get,
            "consumer_lag": consumer_lag(settings.kafka_bootstrap, settings.events_topic, runners)}


def processor_for(container: Any) -> InboundProcessor:
    """One processor per container (it holds the metrics), built on first use."""
    processor = container.extras.get("inbound_processor")
    if processor is None:
        processor = InboundProcessor.from_settings(container.desk, container.settings,
                                                   parse=parse)
        container.extras["inbound_processor"] = processor
    return processor
