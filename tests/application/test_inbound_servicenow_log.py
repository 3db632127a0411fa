"""The real ServiceNow audit log (../shared/data) through the inbound path, checked against
an independent computation of the mapping rules from the raw rows (docs/inbound.md)."""
from __future__ import annotations

import csv
import gzip
import os
from collections import defaultdict
from datetime import datetime, timezone

import pytest

from infra.inbound import cloudevent
from infra.inbound.apply import InboundProcessor
from projections import incidents as incidents_rm
from tests.data_files import servicenow_log

SOURCE = "servicenow://uci-498"
ROWS = int(os.environ.get("ITSM_INBOUND_LOG_ROWS", "6000"))  # 0 = the whole log
STATES = {"New": ("new", None), "Active": ("in_progress", None),
          "Awaiting User Info": ("on_hold", "awaiting_caller"),
          "Awaiting Vendor": ("on_hold", "awaiting_vendor"),
          "Awaiting Problem": ("on_hold", "awaiting_problem"),
          "Awaiting Evidence": ("on_hold", "awaiting_evidence"),
          "Resolved": ("resolved", None), "Closed": ("closed", None)}


def _text(value: str) -> str | None:
    return None if value == "?" else value


def _time(value: str) -> str | None:
    return None if value == "?" else datetime.strptime(value, "%d/%m/%Y %H:%M").isoformat()


def _level(value: str) -> int | None:
    return None if value == "?" else int(value.split(" ")[0])


def to_snapshot(row: dict) -> dict | None:
    """A minimal stand-in for the ServiceNow importer: one CSV row -> the generic shape."""
    if row["incident_state"] not in STATES:
        return None  # the stray -100
    state, hold = STATES[row["incident_state"]]
    priority = _level(row["priority"])
    return {"ref": row["number"], "mod_count": int(row["sys_mod_count"]),
            "updated_at": _time(row["sys_updated_at"]), "updated_by": _text(row["sys_updated_by"]),
            "state": state, "hold_reason": hold, "opened_at": _time(row["opened_at"]),
            "opened_by": _text(row["opened_by"]), "caller": _text(row["caller_id"]),
            "category": _text(row["category"]), "subcategory": _text(row["subcategory"]),
            "service": _text(row["cmdb_ci"]), "impact": _level(row["impact"]),
            "urgency": _level(row["urgency"]), "priority": f"P{priority}" if priority else None,
            "assignment_group": _text(row["assignment_group"]),
            "assignee": _text(row["assigned_to"]), "reopen_count": int(row["reopen_count"]),
            "reassignment_count": int(row["reassignment_count"]),
            "resolution_code": _text(row["closed_code"]), "resolved_by": _text(row["resolved_by"]),
            "resolved_at": _time(row["resolved_at"]), "closed_at": _time(row["closed_at"]),
            "made_sla": row["made_sla"] == "true", "title": None}


def snapshots(limit: int) -> list[dict]:
    out = []
    with gzip.open(servicenow_log(), "rt", newline="") as handle:
        for n, row in enumerate(csv.DictReader(handle)):
            if limit and n >= limit:
                break
            if (data := to_snapshot(row)) is not None:
                out.append(data)
    return out


def expected(data: list[dict]) -> dict[str, dict]:
    """The rules, computed straight from the rows: per ticket, in arrival order."""
    by_ref: dict[str, list[dict]] = defaultdict(list)
    for row in data:
        applied = by_ref[row["ref"]]
        if applied and row["mod_count"] <= applied[-1]["mod_count"]:
            continue  # stale
        applied.append(row)
    result = {}
    for ref, rows in by_ref.items():
        pairs = list(zip(rows, rows[1:]))
        first_done = next((r for r in rows if r["state"] in ("resolved", "closed")), None)
        result[ref] = {
            "state": rows[-1]["state"],
            "reopen_count": sum(max(b["reopen_count"] - a["reopen_count"], 0) for a, b in pairs),
            "reassignment_count": sum(1 for a, b in pairs if a["assignment_group"]
                                      and b["assignment_group"]
                                      and a["assignment_group"] != b["assignment_group"]),
            "first_resolved_at": first_done and first_done["updated_at"],
            "opened_at": rows[0]["opened_at"] or rows[0]["updated_at"],
            "stale": 0,
        }
    return result


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_the_servicenow_log_maps_exactly_by_the_rules(container):
    data = snapshots(ROWS)
    processor = InboundProcessor(container.desk)
    outcomes = []
    for start in range(0, len(data), 1000):
        outcomes += processor.process_batch([
            cloudevent("incident.snapshot", SOURCE, f"row-{start + n}", d["ref"], d,
                       time=d["updated_at"] + "Z")
            for n, d in enumerate(data[start:start + 1000])])
    assert {o.status for o in outcomes} == {"applied"}, [o for o in outcomes
                                                         if o.status != "applied"][:3]
    container.feed.catch_up()
    want = expected(data)
    with container.read_db.transaction(read_only=True) as tx:
        total, rows = incidents_rm.search(tx, {}, limit=100_000, offset=0)
    assert total == len(want)
    first_resolved = _first_resolutions(container)
    for row in rows:
        w = want[row["external_ref"]]
        got = (row["state"], row["reopen_count"], row["reassignment_count"])
        assert got == (w["state"], w["reopen_count"], w["reassignment_count"]), \
            (row["external_ref"], got, w)
        assert row["opened_at"] == incidents_rm_iso(_utc(w["opened_at"]))
        if w["first_resolved_at"]:
            assert first_resolved[row["id"]] == _utc(w["first_resolved_at"]), row["external_ref"]


def incidents_rm_iso(moment: datetime) -> str:
    from projections.incident_state import iso

    return iso(moment)


def _first_resolutions(container) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for notification in container.desk.recorder.select_notifications(start=1, limit=10**7):
        if notification.topic.endswith("Incident.Resolved"):
            event = container.desk.mapper.to_domain_event(notification)
            first.setdefault(str(event.originator_id), event.at)
    return first
