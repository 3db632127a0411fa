"""The KPI read model, driven by published envelopes, on SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import uuid4

import pytest

from infra.sql.database import SqliteDatabase
from projections.kpi.kpi_contributions import RELATIVE_ACCURACY
from projections.kpi.kpi_facts import KpiProjection
from projections.kpi.kpi_quantiles import ranks
from projections.kpi.kpi_queries import KpiQueryError, kpis, periods, state_breakdown
from projections.runtime.envelope import Envelope
from projections.runtime.runner import ProjectionRunner

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday, midnight
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


class Incident:
    """Writes the envelopes of one incident, its version and time moving on by hand."""

    def __init__(self, feed: list[Envelope], at: datetime, number: str = "INC1", **logged) -> None:
        self.feed, self.id, self.version = feed, str(uuid4()), 0
        payload = {
            "number": number,
            "title": "t",
            "caller": "bob",
            "category": "network",
            "subcategory": "vpn",
            "service": "remote access",
            "priority": "P3",
            "channel": "phone",
            "impact": 2,
            "urgency": 2,
            "source": None,
            "external_ref": None,
            **logged,
        }
        self.event("Logged", at, **payload)

    def event(self, name: str, at: datetime, by: str = "alice", **payload) -> Incident:
        self.version += 1
        self.feed.append(
            Envelope(
                event_id=str(uuid4()),
                type=f"Incident.{name}",
                aggregate_id=self.id,
                aggregate_version=self.version,
                schema_version=1,
                occurred_at=at,
                actor={"id": by, "kind": "person"},
                causation_id="req",
                payload=payload,
            )
        )
        return self

    def assign(self, at, group, agent=None, reassignment=False):
        return self.event("Assigned", at, group=group, agent=agent, reassignment=reassignment)

    def ack(self, at):
        return self.event("Acknowledged", at)

    def hold(self, at, reason="awaiting_caller"):
        return self.event("PutOnHold", at, reason=reason, note="")

    def resume(self, at):
        return self.event("Resumed", at)

    def resolve(self, at, by="alice"):
        return self.event("Resolved", at, by=by, code="fixed", notes="")

    def reopen(self, at):
        return self.event("Reopened", at, reason="came back")

    def close(self, at, satisfaction=None):
        return self.event("Closed", at, satisfaction=satisfaction, comment="")


@pytest.fixture
def db(tmp_path):
    database = SqliteDatabase(tmp_path / "kpi.db")
    yield database
    database.close()


def load(db, feed: list[Envelope]) -> ProjectionRunner:
    runner = ProjectionRunner(db, KpiProjection())
    runner.setup()
    runner.apply_batch("test", 0, runner.position("test", 0), list(enumerate(feed)))
    return runner


def query(db, **options):
    options.setdefault("now", NOW)
    with db.transaction(read_only=True) as tx:
        return kpis(tx, **options)


def h(hours: float) -> timedelta:
    return timedelta(hours=hours)


def test_one_incident_through_its_lifecycle_gives_every_timestamp_and_count(db):
    feed: list[Envelope] = []
    (
        Incident(feed, T0)
        .assign(T0 + h(0.5), "desk", "carol")
        .ack(T0 + h(1))
        .hold(T0 + h(2))
        .resume(T0 + h(5))
        .resolve(T0 + h(6))
        .close(T0 + h(30), satisfaction=5)
    )
    load(db, feed)
    [row] = query(db, start=T0, end=T0 + h(40), period="week")
    assert row["period"] == "2026-03-02"
    assert (row["opened"], row["acknowledged"], row["resolved"], row["closed"]) == (1, 1, 1, 1)
    assert row["mtta_hours"] == 1
    assert row["ttr_mean_hours"] == 6
    # Quantiles come from logarithmic bins: within their relative accuracy (docs/kpis.md).
    assert row["ttr_median_hours"] == pytest.approx(6, rel=RELATIVE_ACCURACY)
    assert row["ttr_p90_hours"] == pytest.approx(6, rel=RELATIVE_ACCURACY)
    assert row["fcr_rate"] == 1 and row["reopen_rate"] == 0
    assert row["reassignments_per_incident"] == 0
    assert row["csat_mean"] == 5 and row["csat_responses"] == 1 and row["nps"] == 100
    assert row["backlog"] == 0 and row["backlog_rate"] == 0
    assert row["mean_hours_in_new"] == 1
    assert row["mean_hours_in_in_progress"] == 2  # 1..2 and 5..6
    assert row["mean_hours_in_on_hold"] == 3
    assert row["mean_hours_in_resolved"] == 24
    assert row["sla_compliance"] is None  # no SLA read model, no source verdict, no breach


def test_reassignment_and_reopen_break_first_contact_resolution(db):
    feed: list[Envelope] = []
    Incident(feed, T0, "INC1").assign(T0 + h(1), "desk").resolve(T0 + h(2))
    (
        Incident(feed, T0, "INC2")
        .assign(T0 + h(1), "desk")
        .assign(T0 + h(2), "network", reassignment=True)
        .resolve(T0 + h(4))
    )
    (
        Incident(feed, T0, "INC3")
        .assign(T0 + h(1), "desk")
        .resolve(T0 + h(3))
        .reopen(T0 + h(5))
        .resolve(T0 + h(8))
    )
    Incident(feed, T0, "INC4")  # never touched: in the backlog
    load(db, feed)
    [row] = query(db, start=T0, end=T0 + h(24), period="day")
    assert row["opened"] == 4 and row["resolved"] == 3
    assert row["fcr_rate"] == pytest.approx(1 / 3)
    assert row["reopen_rate"] == pytest.approx(1 / 3)
    assert row["reassignments_per_incident"] == pytest.approx(1 / 3)
    # time to the FIRST resolution: 2, 4 and 3 hours
    assert row["ttr_mean_hours"] == 3
    assert row["ttr_median_hours"] == pytest.approx(3, rel=RELATIVE_ACCURACY)
    assert row["ttr_p90_hours"] == pytest.approx(4, rel=RELATIVE_ACCURACY)
    assert row["backlog"] == 1 and row["backlog_rate"] == 0.25


def test_group_by_group_uses_the_group_at_first_resolution(db):
    feed: list[Envelope] = []
    (
        Incident(feed, T0, "INC1")
        .assign(T0 + h(1), "desk")
        .assign(T0 + h(2), "network", reassignment=True)
        .resolve(T0 + h(3))
    )
    Incident(feed, T0, "INC2").assign(T0 + h(1), "desk").resolve(T0 + h(5))
    load(db, feed)
    rows = query(db, start=T0, end=T0 + h(24), period="day", group_by="group")
    by_group = {r["group"]: r for r in rows}
    assert set(by_group) == {"desk", "network", None}  # None: new, before any assignment
    assert by_group[None]["opened"] == 0 and by_group[None]["mean_hours_in_new"] == 1
    assert by_group["network"]["resolved"] == 1 and by_group["network"]["fcr_rate"] == 0
    assert by_group["desk"]["ttr_mean_hours"] == 5 and by_group["desk"]["fcr_rate"] == 1


def test_backlog_at_the_end_of_each_day_follows_the_state_intervals(db):
    feed: list[Envelope] = []
    day = timedelta(days=1)
    Incident(feed, T0).assign(T0 + h(1), "desk").resolve(T0 + day + h(1)).reopen(
        T0 + 2 * day + h(1)
    ).resolve(T0 + 3 * day + h(1))
    Incident(feed, T0 + day, "INC2").event("Cancelled", T0 + 2 * day, reason="dup")
    load(db, feed)
    rows = query(db, start=T0, end=T0 + 4 * day, period="day")
    assert [r["backlog"] for r in rows] == [1, 1, 1, 0]
    assert [r["opened"] for r in rows] == [1, 1, 0, 0]
    assert [r["resolved"] for r in rows] == [0, 1, 0, 0]  # counted once, at first resolution
    assert [r["cancelled"] for r in rows] == [0, 0, 1, 0]
    assert rows[2]["backlog_rate"] is None  # nothing opened that day


def test_backlog_by_group_counts_the_group_holding_the_incident_then(db):
    feed: list[Envelope] = []
    day = timedelta(days=1)
    (
        Incident(feed, T0)
        .assign(T0 + h(1), "desk")
        .assign(T0 + day + h(1), "network", reassignment=True)
    )
    load(db, feed)
    rows = query(db, start=T0, end=T0 + 2 * day, period="day", group_by="group")
    assert [(r["period"], r["group"], r["backlog"]) for r in rows if r["backlog"]] == [
        ("2026-03-02", "desk", 1),
        ("2026-03-03", "network", 1),
    ]


def test_csat_and_nps_from_closure_surveys(db):
    feed: list[Envelope] = []
    for n, score in enumerate([5, 5, 4, 3, 1, None]):
        Incident(feed, T0, f"INC{n}").resolve(T0 + h(1)).close(T0 + h(2), satisfaction=score)
    load(db, feed)
    [row] = query(db, start=T0, end=T0 + h(24), period="day")
    assert row["closed"] == 6 and row["csat_responses"] == 5
    assert row["csat_mean"] == pytest.approx(18 / 5)
    assert row["nps"] == pytest.approx(100 * (2 - 2) / 5)


def test_sla_verdict_from_breach_events_and_from_the_source(db):
    feed: list[Envelope] = []
    breached = Incident(feed, T0, "INC1")
    breached.event(
        "SlaBreached",
        T0 + h(1),
        metric="resolve",
        policy_id="p",
        policy_version=1,
        due_at=T0.isoformat(),
        cycle=1,
    )
    breached.resolve(T0 + h(2))
    imported = Incident(feed, T0, "INC2", source="servicenow://x", external_ref="SN1")
    imported.resolve(T0 + h(2))
    feed.append(
        Envelope(
            str(uuid4()),
            "SourceTicket.Linked",
            "ticket-1",
            1,
            1,
            T0,
            {"id": "importer", "kind": "upstream"},
            "c",
            {"incident_id": imported.id, "snapshot": {"made_sla": True}},
        )
    )
    feed.append(
        Envelope(
            str(uuid4()),
            "SourceTicket.SnapshotApplied",
            "ticket-1",
            2,
            1,
            T0,
            {"id": "importer", "kind": "upstream"},
            "c",
            {"snapshot": {"made_sla": True}},
        )
    )
    load(db, feed)
    [row] = query(db, start=T0, end=T0 + h(24), period="day")
    assert row["sla_compliance"] == 0.5 and row["source_sla_compliance"] == 1


def test_group_by_every_dimension(db):
    feed: list[Envelope] = []
    Incident(feed, T0, "INC1", priority="P1", category="hw", service="mail").assign(
        T0, "desk", "carol"
    ).resolve(T0 + h(1))
    Incident(feed, T0, "INC2", priority="P2", category="sw", service="vpn").assign(
        T0, "net", "dave"
    )
    load(db, feed)
    for dim, values in {
        "priority": {"P1", "P2"},
        "category": {"hw", "sw"},
        "service": {"mail", "vpn"},
        "agent": {"carol", "dave"},
        "group": {"desk", "net"},
    }.items():
        rows = query(db, start=T0, end=T0 + h(24), period="day", group_by=dim)
        assert {r[dim] for r in rows if r["opened"] or r["backlog"]} == values, dim
        assert sum(r["opened"] for r in rows) == 2


def test_periods_are_whole_calendar_periods_in_the_time_zone():
    weeks = periods(
        datetime(2026, 3, 4, tzinfo=timezone.utc),
        datetime(2026, 3, 10, tzinfo=timezone.utc),
        "week",
    )
    assert [p.label for p in weeks] == ["2026-03-02", "2026-03-09"]
    months = periods(
        datetime(2026, 1, 31, tzinfo=timezone.utc),
        datetime(2026, 3, 1, tzinfo=timezone.utc),
        "month",
    )
    assert [p.label for p in months] == ["2026-01", "2026-02"]
    days = periods(
        datetime(2026, 3, 29, tzinfo=timezone.utc),
        datetime(2026, 3, 30, 12, tzinfo=timezone.utc),
        "day",
        "Europe/Paris",
    )
    assert [p.label for p in days] == ["2026-03-29", "2026-03-30"]
    assert days[0].t1 - days[0].t0 == 23 * 3600  # spring forward
    assert days[0].start.isoformat() == "2026-03-29T00:00:00+01:00"
    with pytest.raises(KpiQueryError):
        periods(T0, T0 + timedelta(days=5000), "day")
    with pytest.raises(KpiQueryError):
        periods(T0, T0 + h(1), "year")


def test_the_ranks_are_the_middle_ones_and_the_nearest_rank_p90():
    # (median's lower and upper rank, p90's rank): an odd count has one middle value.
    assert ranks(1) == (1, 1, 1)
    assert ranks(10) == (5, 6, 9)
    assert ranks(11) == (6, 6, 10)
    assert ranks(70) == (35, 36, 63)


def test_duplicates_are_applied_once_and_batches_equal_single_events(db, tmp_path):
    feed: list[Envelope] = []
    (
        Incident(feed, T0)
        .assign(T0 + h(1), "desk")
        .ack(T0 + h(2))
        .resolve(T0 + h(3))
        .reopen(T0 + h(4))
        .hold(T0 + h(5))
        .resume(T0 + h(6))
        .resolve(T0 + h(7))
        .close(T0 + h(8))
    )
    load(db, feed + feed)
    one_by_one = SqliteDatabase(tmp_path / "single.db")
    runner = ProjectionRunner(one_by_one, KpiProjection())
    runner.setup()
    for position, event in enumerate(feed):
        runner.apply_batch("test", 0, position, [(position, event)])
    dump = "SELECT * FROM kpi_intervals ORDER BY incident_id, seq"
    facts = "SELECT * FROM kpi_facts"
    with db.transaction() as a, one_by_one.transaction() as b:
        assert a.execute(dump).fetchall() == b.execute(dump).fetchall()
        assert a.execute(facts).fetchall() == b.execute(facts).fetchall()
        # new, new with desk, in_progress, resolved, in_progress, on_hold, in_progress, resolved
        assert len(a.execute(dump).fetchall()) == 8
    one_by_one.close()


def test_state_breakdown_ranks_the_slowest_steps(db):
    feed: list[Envelope] = []
    Incident(feed, T0).ack(T0 + h(1)).hold(T0 + h(2), "awaiting_vendor").resume(T0 + h(12)).resolve(
        T0 + h(13)
    ).close(T0 + h(14))
    load(db, feed)
    with db.transaction(read_only=True) as tx:
        steps = state_breakdown(tx, T0, T0 + h(24))
    assert (steps[0]["state"], steps[0]["hold_reason"], steps[0]["mean_hours"]) == (
        "on_hold",
        "awaiting_vendor",
        10,
    )


def test_empty_read_model_answers_no_rows(db):
    load(db, [])
    assert query(db) == []
    assert len(query(db, start=T0, end=T0 + timedelta(days=3), period="day")) == 3
