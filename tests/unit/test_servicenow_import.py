"""ServiceNow export rows -> incident.snapshot CloudEvents (no broker needed)."""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from collections import deque

import orjson
import pytest

from infra.cli.import_commands import register
from infra.importers.servicenow_import import (
    ExportChanged,
    ImportStats,
    NotAnIncidentExport,
    TicketTurns,
    count_rows,
    import_servicenow,
    snapshots,
)
from infra.messaging.cloudevents import parse

HEADER = (
    "number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,"
    "caller_id,opened_by,opened_at,sys_created_by,sys_created_at,sys_updated_by,"
    "sys_updated_at,contact_type,location,category,subcategory,u_symptom,cmdb_ci,impact,"
    "urgency,priority,assignment_group,assigned_to,knowledge,u_priority_confirmation,"
    "notify,problem_id,rfc,vendor,caused_by,closed_code,resolved_by,resolved_at,"
    "closed_at"
).split(",")


def row(
    number="INC0000045",
    state="New",
    mod=0,
    updated="29/2/2016 01:23",
    group="Group 56",
    assignee="?",
    reopen=0,
    reassign=0,
    made_sla="true",
    **other,
) -> dict:
    values = dict.fromkeys(HEADER, "?")
    values.update(
        number=number,
        incident_state=state,
        active="true",
        reassignment_count=str(reassign),
        reopen_count=str(reopen),
        sys_mod_count=str(mod),
        made_sla=made_sla,
        caller_id="Caller 2403",
        opened_by="Opened by  8",
        opened_at="29/2/2016 01:16",
        sys_updated_by="Updated by 21",
        sys_updated_at=updated,
        contact_type="Phone",
        category="Category 55",
        subcategory="Subcategory 170",
        u_symptom="Symptom 72",
        impact="2 - Medium",
        urgency="1 - High",
        priority="3 - Moderate",
        assignment_group=group,
        assigned_to=assignee,
        closed_code="code 5",
        resolved_by="Resolved by 149",
        resolved_at="29/2/2016 11:29",
        closed_at="5/3/2016 12:00",
    )
    values.update(other)
    return values


def write(path, rows, gz=False):
    text = io.StringIO()
    writer = csv.DictWriter(text, HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_a_row_becomes_a_valid_incident_snapshot_cloudevent(tmp_path):
    path = write(
        tmp_path / "log.csv",
        [row(state="Awaiting User Info", mod=3, updated="1/3/2016 14:05", assignee="Resolver 7")],
    )
    [(key, event)] = list(snapshots(path))
    assert key == "INC0000045"
    assert (event["id"], event["source"], event["type"], event["subject"], event["time"]) == (
        "INC0000045:3:0",
        "servicenow://uci-498",
        "incident.snapshot",
        "INC0000045",
        "2016-03-01T14:05:00",
    )
    assert event["data"] == {
        "ref": "INC0000045",
        "mod_count": 3,
        "updated_at": "2016-03-01T14:05:00",
        "updated_by": "Updated by 21",
        "state": "on_hold",
        "hold_reason": "awaiting_caller",
        "opened_at": "2016-02-29T01:16:00",
        "opened_by": "Opened by  8",
        "caller": "Caller 2403",
        "category": "Category 55",
        "subcategory": "Subcategory 170",
        "service": None,
        "impact": 2,
        "urgency": 1,
        "priority": "P3",
        "assignment_group": "Group 56",
        "assignee": "Resolver 7",
        "reopen_count": 0,
        "reassignment_count": 0,
        "resolution_code": "code 5",
        "resolved_by": "Resolved by 149",
        "resolved_at": "2016-02-29T11:29:00",
        "closed_at": "2016-03-05T12:00:00",
        "made_sla": True,
        "title": "Symptom 72",
        "channel": "phone",
    }
    parsed = parse(orjson.dumps(event))  # the inbound side accepts it as it is
    assert parsed.type == "incident.snapshot" and parsed.subject == "INC0000045"


@pytest.mark.parametrize(
    "state, expected",
    [
        ("New", ("new", None)),
        ("Active", ("in_progress", None)),
        ("Awaiting User Info", ("on_hold", "awaiting_caller")),
        ("Awaiting Vendor", ("on_hold", "awaiting_vendor")),
        ("Awaiting Problem", ("on_hold", "awaiting_problem")),
        ("Awaiting Evidence", ("on_hold", "awaiting_evidence")),
        ("Resolved", ("resolved", None)),
        ("Closed", ("closed", None)),
    ],
)
def test_states(tmp_path, state, expected):
    [(_, event)] = list(snapshots(write(tmp_path / "s.csv", [row(state=state)])))
    assert (event["data"]["state"], event["data"]["hold_reason"]) == expected


def test_minus_100_rows_are_skipped_and_counted_and_gzip_is_recognised(tmp_path):
    path = write(
        tmp_path / "log.bin",
        [
            row(mod=0),
            row(state="-100", mod=1),
            row(state="Resolved", mod=2, made_sla="false", impact="?", priority="?", group="?"),
        ],
        gz=True,
    )
    stats = ImportStats()
    events = [e for _, e in snapshots(path, stats=stats)]
    assert [e["id"] for e in events] == ["INC0000045:0:0", "INC0000045:2:2"]
    assert stats.rows == 3 and dict(stats.skipped) == {"state -100": 1}
    last = events[-1]["data"]
    assert (last["made_sla"], last["impact"], last["priority"], last["assignment_group"]) == (
        False,
        None,
        None,
        None,
    )
    assert count_rows(path) == 3


def test_source_timezone_writes_offsets_with_daylight_saving(tmp_path):
    path = write(
        tmp_path / "tz.csv", [row(updated="27/3/2016 00:30"), row(mod=1, updated="27/3/2016 02:30")]
    )
    times = [e["data"]["updated_at"] for _, e in snapshots(path, source_timezone="Europe/Lisbon")]
    assert times == ["2016-03-27T00:30:00+00:00", "2016-03-27T02:30:00+01:00"]


def out_of_order_rows() -> list[dict]:
    """Two tickets interleaved; A's rows far from mod_count order, with a repeated count at
    different times (3), one at the same time (4), and a -100 row (skipped) among them."""
    return [
        row("A", "Active", 3, "1/3/2016 10:00"),
        row("B", mod=0),
        row("A", "Active", 1),
        row("A", "Resolved", 3, "2/3/2016 09:00"),
        row("A", "Active", 2),
        row("B", "Active", 1),
        row("A", "-100", 0),
        row("A", "New", 0),
        row("A", "Closed", 4, "3/3/2016 12:00"),
        row("A", "Resolved", 4, "3/3/2016 12:00"),
    ]


# Per ticket by mod_count; among equal counts the latest sys_updated_at first, so that the
# consumer applies it and ignores the older one as stale; file order among equal times.
SENDING_ORDER = ["B:0:1", "B:1:5", "A:0:7", "A:1:2", "A:2:4", "A:3:3", "A:3:0", "A:4:8", "A:4:9"]


def test_each_tickets_rows_are_sent_by_mod_count_latest_update_first(tmp_path):
    path = write(tmp_path / "o.csv", out_of_order_rows())
    stats = ImportStats()
    events = [e for _, e in snapshots(path, stats=stats)]
    assert [e["id"] for e in events] == SENDING_ORDER
    assert [e["data"]["state"] for e in events if e["subject"] == "A"] == [
        "new",
        "in_progress",
        "in_progress",
        "resolved",
        "in_progress",
        "closed",
        "resolved",
    ]
    assert stats.rows == 10 and dict(stats.skipped) == {"state -100": 1}


def test_the_limit_counts_rows_of_the_file(tmp_path):
    path = write(tmp_path / "o.csv", out_of_order_rows())
    assert [e["id"] for _, e in snapshots(path, limit=4)] == ["B:0:1", "A:1:2", "A:3:3", "A:3:0"]


def test_a_row_waits_for_its_turn_and_a_changed_export_is_refused():
    turns = TicketTurns({"A": deque([2, 0, 1])})
    assert turns.arrive("A", 0, "a0") == []
    assert turns.arrive("A", 1, None) == []  # skipped: it only gives up its turn
    assert turns.arrive("A", 2, "a2") == ["a2", "a0"]
    with pytest.raises(ExportChanged):
        turns.arrive("B", 3, "b3")  # a ticket the ordering pass did not see
    waiting = TicketTurns({"A": deque([1, 0])})
    waiting.arrive("A", 0, "a0")
    with pytest.raises(ExportChanged):
        waiting.check_all_sent()


def test_a_file_that_is_not_an_incident_export_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(NotAnIncidentExport, match="sys_mod_count"):
        list(snapshots(path))


class FakeProducer:
    def __init__(self):
        self.sent, self.flushed = [], False

    def send(self, topic, key, value):
        self.sent.append((topic, key, orjson.loads(value)))
        return self

    def add_errback(self, callback):
        return self

    def flush(self):
        self.flushed = True


def test_import_sends_keyed_by_ref_and_flushes(tmp_path):
    path = write(tmp_path / "k.csv", [row(), row(number="INC2"), row(state="-100", mod=5)])
    producer = FakeProducer()
    stats = import_servicenow(
        path, "unused:9092", topic="t.inbound", producer=producer, show_progress=False
    )
    assert [(t, k) for t, k, _ in producer.sent] == [
        ("t.inbound", b"INC0000045"),
        ("t.inbound", b"INC2"),
    ]
    assert producer.flushed and stats.produced == 2 and stats.rows == 3
    assert "1 state -100" in stats.summary()


def test_import_sends_in_the_sending_order_keyed_by_ticket(tmp_path):
    producer = FakeProducer()
    import_servicenow(
        write(tmp_path / "o.csv", out_of_order_rows()),
        "unused:9092",
        producer=producer,
        show_progress=False,
    )
    assert [(key, event["id"]) for _, key, event in producer.sent] == [
        (event_id.split(":")[0].encode(), event_id) for event_id in SENDING_ORDER
    ]


def test_the_cli_subcommand(tmp_path):
    root = argparse.ArgumentParser(prog="itsm")
    register(root.add_subparsers(dest="command"))
    args = root.parse_args(
        ["import", "servicenow", "log.csv.gz", "--source-timezone", "UTC", "--limit", "10"]
    )
    assert (args.path, args.source_timezone, args.limit) == ("log.csv.gz", "UTC", 10)
    assert args.run.__name__ == "import_servicenow"
