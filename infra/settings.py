"""All configuration, from ITSM_* environment variables (or a .env file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ITSM_", env_file=".env", extra="ignore")

    data_dir: Path = Path("var")
    # Event store of record: a SQLite file under data_dir unless a postgresql:// URL is set.
    database_url: str | None = None
    # Read models: their own database; defaults to database_url, else a SQLite file.
    read_database_url: str | None = None
    kafka_bootstrap: str | None = None
    kafka_partitions: int = 6
    events_topic: str = "itsm.events"
    snapshot_interval: int = 50
    # Incidents kept in memory per API process; each load still fast-forwards from the store,
    # so several processes stay correct and the store still rejects a stale append.
    aggregate_cache_size: int = 10_000
    # Rows are impact 1..3 (high..low), columns urgency 1..3.
    priority_matrix: str = "P1,P2,P3;P2,P3,P4;P3,P4,P4"
    # A practice's ticket number prefix where it differs from its own (INC, PRB, CHG...), as
    # JSON: ITSM_NUMBER_PREFIXES='{"incident": "IM"}'.
    number_prefixes: dict[str, str] = {}
    # The IANA zones KPIs are reported in (docs/kpis.md): the read model keeps day, week and
    # month figures for each, so each costs writes. ITSM_KPI_ZONES=UTC,Europe/Paris.
    kpi_zones: Annotated[tuple[str, ...], NoDecode] = ("UTC",)
    access_log: bool = False
    # Who may read /openapi.json, /docs (Swagger UI) and /redoc: anyone, any valid API key
    # (whatever its role), or nobody (404). The pages' scripts come from the package, no CDN.
    api_docs: Literal["public", "authenticated", "off"] = "public"
    api_threads: int = 8
    # API processes of `itsm serve`, sharing its port: stateless, so more use more cores.
    # Only with Kafka: without it the process also feeds the read models, which is done once.
    api_workers: int = 1
    # Seconds a Python thread may hold the GIL while others wait (CPython's default: 0.005).
    # A command passes between the event loop, a worker thread and the committer; behind the
    # read-model feed, each hand-off could wait a whole slice: the latency tail.
    api_switch_interval: float = 0.001
    host: str = "127.0.0.1"
    port: int = 8000
    # A worker's static group membership id (default: the host name), so that after a
    # restart it takes its partitions back at once instead of waiting out a session. Two
    # processes of one role on one host each need their own.
    worker_id: str | None = None
    # A consumer that returns no records this long while its read model is behind is
    # recreated; one whose poll has not returned in worker_stuck_seconds is replaced.
    worker_stall_seconds: float = 60.0
    worker_stuck_seconds: float = 120.0
    # `itsm worker` serves its counters (Prometheus text) on this port; none if unset.
    worker_metrics_port: int | None = None
    # Dead-letter topics and their producer take records up to this size; larger ones are
    # dead-lettered as a reference to the original record.
    dead_letter_max_bytes: int = 16 * 1024 * 1024
    # /health/ready: each check's time limit, and when a read model counts as stalled (no
    # progress while behind) or as having quarantined too many aggregates.
    health_timeout: float = 2.0
    health_stall_seconds: float = 120.0
    health_max_quarantined: int = 100
    relay_batch_size: int = 500
    poll_interval: float = 0.05
    # Inbound events: CloudEvents from monitoring and other ticketing tools.
    inbound_topic: str = "itsm.inbound"  # rejected messages go to <inbound_topic>.dlq
    # Times without an offset in incident.snapshot data are in this IANA timezone.
    inbound_source_timezone: str = "UTC"
    # alert.resolved resolves the incident when its data says auto_resolve: true, or when
    # auto_resolve is absent/null and this is true.
    inbound_alert_auto_resolve: bool = False
    inbound_max_bytes: int = 1024 * 1024
    # Largest request body on every route but /v1/inbound (ITSM_INBOUND_MAX_BYTES): 413 beyond.
    http_max_body_bytes: int = 1024 * 1024
    inbound_batch_size: int = 1000  # records per poll of `itsm inbound`
    # `itsm inbound` serves its counters (Prometheus text) on this port; none if unset.
    inbound_metrics_port: int | None = None
    # SLA (docs/sla.md): the default policy created at bootstrap (targets in seconds per
    # priority, "*" for any other; calendar as BusinessCalendar.to_dict() JSON, empty = 24x7).
    sla_default_policy: bool = True
    sla_default_name: str = "Default"
    sla_default_respond: str = "P1=900,P2=1800,P3=3600,P4=14400"
    sla_default_resolve: str = "P1=14400,P2=28800,P3=86400,P4=259200"
    sla_default_calendar: str = ""
    sla_default_warnings: str = "50,75,90"
    # `itsm serve` without Kafka also runs the SLA scheduler; with Kafka run `itsm sla scheduler`.
    sla_scheduler_embedded: bool = True
    sla_scheduler_poll: float = 0.2
    # `itsm serve` without Kafka also records review reminders of improvements (an event when
    # a review date passes unverified); with Kafka run `itsm improvements reminders`.
    review_reminders_embedded: bool = True
    # Tamper evidence (docs/audit.md): the Ed25519 key checkpoints are signed with (a PEM
    # file made by `itsm audit keygen`; its `.pub` beside it is what auditors verify with),
    # and how often `itsm audit checkpoints` signs: after so many events, or so many seconds
    # with at least one new event.
    audit_signing_key: Path | None = None
    audit_checkpoint_events: int = 1000
    audit_checkpoint_seconds: float = 60.0

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'events.db'}"

    @property
    def read_url(self) -> str:
        return (
            self.read_database_url
            or self.database_url
            or f"sqlite:///{self.data_dir / 'readmodels.db'}"
        )

    def eventsourcing_env(self) -> dict[str, str]:
        if self.store_url.startswith("sqlite:///"):
            return {**self._sqlite_env(), **self._cache_env()}
        from infra.event_store.postgres_env import eventsourcing_env

        return {**eventsourcing_env(self.store_url), **self._cache_env()}

    def _sqlite_env(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "infra.event_store.chained_sqlite:Factory",
            "SQLITE_DBNAME": self.store_url.removeprefix("sqlite:///"),
            "SQLITE_LOCK_TIMEOUT": "30",
        }

    def _cache_env(self) -> dict[str, str]:
        if not self.aggregate_cache_size:
            return {}
        return {
            "AGGREGATE_CACHE_MAXSIZE": str(self.aggregate_cache_size),
            "AGGREGATE_CACHE_FASTFORWARD": "y",
        }

    @field_validator("kpi_zones", mode="before")
    @classmethod
    def _zones(cls, value: object) -> tuple[str, ...]:
        names = value.split(",") if isinstance(value, str) else list(value or ())  # type: ignore[call-overload]
        zones = tuple(str(name).strip() for name in names if str(name).strip())
        for name in zones:
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{name!r} is not an IANA time zone such as UTC") from None
        return zones or ("UTC",)
