"""The real ServiceNow audit log (../shared/data) imported by the ServiceNow importer and
applied by the inbound processor, checked against an independent computation of the mapping
rules from the raw rows (docs/inbound.md)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import orjson

from application.inbound.inbound_processor import InboundProcessor
from infra.importers.servicenow_import import snapshots
from infra.messaging.cloudevents import parse
from projections.incident import incident_queue as incidents_rm
from tests.data_files import applied_rows, servicenow_histories, servicenow_log

ROWS = int(os.environ.get("ITSM_INBOUND_LOG_ROWS", "6000"))  # 0 = the whole log
STATES = {
    "New": "new",
    "Active": "in_progress",
    "Awaiting User Info": "on_hold",
    "Awaiting Vendor": "on_hold",
    "Awaiting Problem": "on_hold",
    "Awaiting Evidence": "on_hold",
    "Resolved": "resolved",
    "Closed": "closed",
}


def _time(value: str) -> str | None:
    return None if value == "?" else datetime.strptime(value, "%d/%m/%Y %H:%M").isoformat()


def _group(row: dict) -> str | None:
    return None if row["assignment_group"] == "?" else row["assignment_group"]


def expected(histories: dict[str, list[dict]]) -> dict[str, dict]:
    """The rules, computed straight from each ticket's applied rows."""
    result = {}
    for ref, history in histories.items():
        rows = applied_rows(history)
        pairs = list(zip(rows, rows[1:], strict=False))
        first_done = next((r for r in rows if r["incident_state"] in ("Resolved", "Closed")), None)
        result[ref] = {
            "state": STATES[rows[-1]["incident_state"]],
            "reopen_count": sum(
                max(int(b["reopen_count"]) - int(a["reopen_count"]), 0) for a, b in pairs
            ),
            "reassignment_count": sum(
                1 for a, b in pairs if _group(a) and _group(b) and _group(a) != _group(b)
            ),
            "first_resolved_at": first_done and _time(first_done["sys_updated_at"]),
            "opened_at": _time(rows[0]["opened_at"]) or _time(rows[0]["sys_updated_at"]),
            "stale": len(history) - len(rows),
            "made_sla": {"true": 1, "false": 0}.get(rows[-1]["made_sla"]),
        }
    return result


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_the_servicenow_log_maps_exactly_by_the_rules(container):
    events = [orjson.dumps(event) for _, event in snapshots(servicenow_log(), limit=ROWS or None)]
    processor = InboundProcessor(container.desk, parse=parse)
    outcomes = []
    for start in range(0, len(events), 1000):
        outcomes += processor.process_batch(events[start : start + 1000])
    assert {o.status for o in outcomes} == {"applied"}, [
        o for o in outcomes if o.status != "applied"
    ][:3]
    container.feed.catch_up()
    want = expected(servicenow_histories(servicenow_log(), ROWS))
    with container.read_db.transaction(read_only=True) as tx:
        total, rows = incidents_rm.search(tx, {}, limit=100_000, offset=0)
    assert total == len(want)
    # Its first row in the file is an older Active record that carries the sys_mod_count of
    # the closing one: only the documented order lets the closing record win.
    assert next(r for r in rows if r["external_ref"] == "INC0000135")["state"] == "closed"
    assert sum(o.effect == "stale" for o in outcomes) == sum(w["stale"] for w in want.values())
    first_resolved = _first_resolutions(container)
    made_sla = _source_verdicts(container)
    for row in rows:
        w = want[row["external_ref"]]
        got = (row["state"], row["reopen_count"], row["reassignment_count"])
        assert got == (w["state"], w["reopen_count"], w["reassignment_count"]), (
            row["external_ref"],
            got,
            w,
        )
        assert row["opened_at"] == incidents_rm_iso(_utc(w["opened_at"]))
        if w["first_resolved_at"]:
            assert first_resolved[row["id"]] == _utc(w["first_resolved_at"]), row["external_ref"]
        # The source's SLA verdict of its latest applied record reaches the KPIs.
        assert made_sla.get(row["id"]) == w["made_sla"], row["external_ref"]


def incidents_rm_iso(moment: datetime) -> str:
    from projections.runtime.time_text import iso

    return iso(moment)


def _source_verdicts(container) -> dict[str, int | None]:
    with container.read_db.transaction(read_only=True) as tx:
        rows = tx.execute("SELECT incident_id, made_sla FROM kpi_source_links").fetchall()
    return {row[0]: row[1] for row in rows}


def _first_resolutions(container) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for notification in container.desk.recorder.select_notifications(start=1, limit=10**7):
        if notification.topic.endswith("Incident.Resolved"):
            event = container.desk.mapper.to_domain_event(notification)
            first.setdefault(str(event.originator_id), event.at)
    return first
