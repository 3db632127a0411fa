"""Prometheus metrics: event store growth, relay and projection lag, HTTP latency.

Each app has its own CollectorRegistry so that tests (and several apps in one process) do
not collide on the global registry. Store and lag figures are computed when scraped.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from infra.composition_root import Container

# generate_latest writes the 0.0.4 text format, whatever CONTENT_TYPE_LATEST says.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def _applied(next_position: int) -> int:
    """Positions are the next notification id to handle, so one less has been handled."""
    return max(next_position - 1, 0)


class PipelineCollector(Collector):
    def __init__(self, container: Container) -> None:
        self.container = container

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stored = self.container.desk.stored_events()
        yield GaugeMetricFamily("itsm_events_stored", "Events in the event store", value=stored)
        yield from self._publishing(stored)
        yield self._lags(stored)
        yield self._quarantined()

    def _publishing(self, stored: int) -> Iterator[GaugeMetricFamily]:
        published = self._published()
        if published is None:
            return
        yield GaugeMetricFamily(
            "itsm_events_published", "Events handed on to the projections", value=published
        )
        yield GaugeMetricFamily(
            "itsm_relay_lag_events",
            "Stored events not yet published",
            value=max(stored - published, 0),
        )

    def _lags(self, stored: int) -> GaugeMetricFamily:
        lag = GaugeMetricFamily(
            "itsm_projection_lag_events",
            "Stored events a read model has not applied yet",
            labels=["projection"],
        )
        for name, value in self._projection_lags(stored).items():
            lag.add_metric([name], value)
        return lag

    def _quarantined(self) -> GaugeMetricFamily:
        quarantined = GaugeMetricFamily(
            "itsm_projection_quarantined_aggregates",
            "Aggregates a read model could not fold",
            labels=["projection"],
        )
        for runner in self.container.runners:
            quarantined.add_metric([runner.projection.name], runner.quarantine_count())
        return quarantined

    def _published(self) -> int | None:
        if self.container.kafka is not None:
            return _applied(self.container.kafka.relay_position() or 0)
        if self.container.feed is None:
            return None  # Kafka mode without a relay probe: unknown, so not reported
        # The in-process feed publishes by applying; it stands where the slowest runner is.
        positions = self.container.feed_positions().values()
        return _applied(min(positions)) if positions else 0

    def _projection_lags(self, stored: int) -> dict[str, int]:
        if self.container.uses_kafka:
            probes = self.container.kafka
            return dict(probes.consumer_lag() or {}) if probes is not None else {}
        return {
            name: max(stored - _applied(position), 0)
            for name, position in self.container.feed_positions().items()
        }


class Metrics:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.registry = CollectorRegistry()
        self.registry.register(PipelineCollector(container))
        self.requests = Histogram(
            "itsm_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).observe(seconds)

    def render(self) -> bytes:
        # The inbound processor keeps its own counters; it exists once /v1/inbound was used.
        inbound = self.container.inbound_if_built()
        return generate_latest(self.registry) + (
            generate_latest(inbound.registry) if inbound is not None else b""
        )
