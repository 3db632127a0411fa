"""Imported history keeps its SLA clocks whether or not the scheduler records notices meanwhile.

The real ServiceNow log (../shared/data) goes through the inbound processor twice: once with
no scheduler, once with a scheduler recording, after every few messages, every alarm of every
running clock. Its clock is set decades ahead, so every due moment counts as passed whatever
the ticket's lag: the worst race an import can meet. Many notices land before the import
delivered the response or resolution that came earlier in the ticket's own history, and all
of them are stamped with the day they were recorded, years after that history. Clocks,
breaches and compliance must come out the same; only the bookkeeping of which notices were
recorded differs.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from eventsourcing.utils import get_topic

from application.inbound.inbound_processor import InboundProcessor
from domain.incident.incident import Incident
from infra.composition_root import bootstrap
from infra.importers.servicenow_import import snapshots
from infra.messaging.cloudevents import parse
from infra.settings import Settings
from projections.sla.sla_clocks import CLOCK_COLUMNS, SlaClocksProjection
from projections.sla.sla_queries import compliance, decided
from tests.data_files import servicenow_log

# The first twelfth of the log keeps the test near 15 s (two imports); 0 = the whole log.
ROWS = int(os.environ.get("ITSM_SLA_HISTORY_ROWS", "12000"))
BATCH = 10  # messages between two looks of the scheduler: it sees tickets mid-history
# Which notices were recorded, and when each row was written: not the clock itself.
BOOKKEEPING = {"ticket_id", "number", "warnings", "breach_recorded", "alarms", "seq", "lag_s"}
COMPARED = [c for c in CLOCK_COLUMNS if c not in BOOKKEEPING]
LATE = timedelta(days=365 * 50).total_seconds()
NOW = datetime.now(UTC)
ALL_TIME = (datetime(2000, 1, 1, tzinfo=UTC), NOW + timedelta(days=1))


def _import(tmp_path, events: list[bytes], with_scheduler: bool) -> dict:
    # Without the scheduler the batch size changes nothing but the speed.
    batch = BATCH if with_scheduler else 1000
    container = bootstrap(Settings(data_dir=tmp_path), projections=[SlaClocksProjection()])
    try:
        scheduler = container.sla_scheduler() if with_scheduler else None
        if scheduler is not None:
            scheduler.clock = lambda: time.time() + LATE
        processor = InboundProcessor(container.desk, parse=parse)
        for start in range(0, len(events), batch):
            outcomes = processor.process_batch(events[start : start + batch])
            assert {o.status for o in outcomes} == {"applied"}
            _catch_up(container, scheduler)
        _catch_up(container, scheduler)
        return _figures(container, scheduler)
    finally:
        container.close()


def _catch_up(container, scheduler) -> None:
    container.feed.catch_up()
    if scheduler is not None:
        scheduler.refresh()
        scheduler.fire_due()
        container.feed.catch_up()


def _figures(container, scheduler) -> dict:
    refs = _external_refs(container)
    with container.read_db.transaction(read_only=True) as tx:
        rows = tx.execute(f"SELECT {', '.join(CLOCK_COLUMNS)} FROM sla_clocks").fetchall()
        clocks = {
            (refs[r["ticket_id"]], r["metric"]): tuple(r[c] for c in COMPARED)
            for r in (dict(zip(CLOCK_COLUMNS, row, strict=True)) for row in rows)
        }
        return {
            "clocks": clocks,
            "compliance": compliance(tx, *ALL_TIME, NOW, by="priority"),
            "decided": sorted(map(repr, decided(tx, *ALL_TIME, NOW))),
            "notices": scheduler.recorded if scheduler else 0,
            "breach_noticed": {
                (refs[t], m)
                for t, m in tx.execute(
                    "SELECT ticket_id, metric FROM sla_clocks WHERE breach_recorded"
                ).fetchall()
            },
        }


def _external_refs(container) -> dict[str, str]:
    desk = container.desk
    logged = desk.recorder.select_notifications(
        start=1, limit=10**7, topics=[get_topic(Incident.Logged)]
    )
    return {str(e.originator_id): e.external_ref for e in map(desk.mapper.to_domain_event, logged)}


def _ratio(figures: dict, *metrics: str) -> float:
    rows = [r for r in figures["compliance"] if r["metric"] in metrics]
    met, breached = sum(r["met"] for r in rows), sum(r["breached"] for r in rows)
    return met / (met + breached)


def _report(quiet: dict, noisy: dict) -> str:
    return (
        "; ".join(
            f"{name} compliance {_ratio(quiet, *metrics):.3f} without the scheduler,"
            f" {_ratio(noisy, *metrics):.3f} with it"
            for name, metrics in (
                ("respond", ("respond",)),
                ("resolve", ("resolve",)),
                ("overall", ("respond", "resolve", "ola")),
            )
        )
        + f"; {noisy['notices']} notices recorded"
    )


@pytest.fixture(scope="module")
def history() -> list[bytes]:
    return [orjson.dumps(event) for _, event in snapshots(servicenow_log(), limit=ROWS or None)]


def test_importing_history_with_the_scheduler_gives_the_clocks_it_gives_without(tmp_path, history):
    quiet = _import(tmp_path / "quiet", history, with_scheduler=False)
    noisy = _import(tmp_path / "noisy", history, with_scheduler=True)
    # The race did happen: breach notices recorded before the import delivered the
    # resolution (or response) that met the clock in the ticket's own history.
    state = COMPARED.index("state")
    raced = {k for k in noisy["breach_noticed"] if quiet["clocks"][k][state] == "met"}
    print(f"\n{_report(quiet, noisy)}; {len(raced)} of them breach notices of clocks met")
    assert len(raced) > 100
    differ = sorted(k for k in quiet["clocks"] if quiet["clocks"][k] != noisy["clocks"].get(k))
    assert not differ, f"{len(differ)} of {len(quiet['clocks'])} clocks differ, e.g. " + "; ".join(
        f"{k}: {dict(zip(COMPARED, quiet['clocks'][k], strict=True))} !="
        f" {dict(zip(COMPARED, noisy['clocks'].get(k, ()), strict=False))}"
        for k in differ[:2]
    )
    assert noisy["clocks"].keys() == quiet["clocks"].keys()
    assert noisy["decided"] == quiet["decided"]
    assert noisy["compliance"] == quiet["compliance"]
