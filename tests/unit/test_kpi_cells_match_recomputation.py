"""The KPI cells answer what the per-incident recomputation (tests/oracle) answers, on random
histories full of the cases cells get wrong first: reassignments and recategorisations that
move an incident's whole history, reopens that change past periods' rates, holds with
reasons, cancellations, events at the same instant and at local midnight, in two zones, and
the events applied in batches of every size (a batch's changes are summed per cell)."""

from __future__ import annotations

import math
import random
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest

from infra.sql.database import SqliteDatabase
from projections.kpi import kpi_facts
from projections.kpi.kpi_contributions import RELATIVE_ACCURACY
from projections.kpi.kpi_facts import BULK_BEHIND, KpiProjection
from projections.kpi.kpi_queries import DIMENSIONS, kpis
from projections.runtime.envelope import Envelope
from projections.runtime.read_store import ReadStore
from projections.runtime.runner import ProjectionRunner
from tests.oracle import kpi_recomputation as oracle
from tests.unit.test_kpis import Incident

ZONES = ("UTC", "America/New_York")
START = datetime(2026, 2, 20, 5, tzinfo=timezone.utc)  # midnight in New York
SPREAD_DAYS = 40  # incidents are opened over this many days from START
QUANTILES = ("ttr_median_hours", "ttr_p90_hours")
GROUPS, AGENTS = ("desk", "network", "apps", None), ("ann", "bo", "cy", None)


def _moment(rng: random.Random, at: datetime) -> datetime:
    """Later than `at`: often at once or at a midnight, otherwise minutes to days."""
    choice = rng.random()
    if choice < 0.15:
        return at
    if choice < 0.3:
        return (at + timedelta(days=1)).replace(hour=rng.choice((0, 5)), minute=0)
    return at + timedelta(minutes=rng.choice((1, 30, 90, 600, 1500, 4000, 9000)))


def _history(rng: random.Random, feed: list[Envelope], number: int) -> None:
    at = START + timedelta(minutes=rng.randrange(0, 60 * 24 * SPREAD_DAYS))
    category = rng.choice(("network", "email", None))
    incident = Incident(feed, at, number=f"INC{number}", category=category)
    for _ in range(rng.randrange(1, 9)):
        at = _moment(rng, at)
        _step(rng, incident, at)


def _step(rng: random.Random, incident: Incident, at: datetime) -> None:
    kind = rng.choice(
        ("assign", "assign", "ack", "hold", "resume", "resolve", "resolve", "reopen", "close")
        + ("cancel", "recategorise", "reprioritise", "breach")
    )
    if kind == "assign":
        incident.assign(at, rng.choice(GROUPS), rng.choice(AGENTS), reassignment=rng.random() < 0.5)
    elif kind == "ack":
        incident.ack(at)
    elif kind == "hold":
        incident.hold(at, reason=rng.choice(("awaiting_caller", "awaiting_vendor")))
    elif kind in ("resume", "resolve", "reopen"):
        getattr(incident, kind)(at)
    elif kind == "close":
        incident.close(at, satisfaction=rng.choice((None, 1, 3, 4, 5)))
    elif kind == "cancel":
        incident.event("Cancelled", at, reason="dup")
    elif kind == "recategorise":
        category = rng.choice(("network", "email", "hardware"))
        incident.event("Recategorised", at, category=category, subcategory=None, service="s")
    elif kind == "reprioritise":
        priority = rng.choice(("P1", "P2", "P4"))
        incident.event("Reprioritised", at, impact=1, urgency=1, priority=priority)
    else:
        incident.event("SlaBreached", at, metric=rng.choice(("respond", "resolve")))


def _feed(seed: int, incidents: int) -> list[Envelope]:
    rng, feed = random.Random(seed), []
    histories: list[list[Envelope]] = []
    for number in range(incidents):
        own: list[Envelope] = []
        _history(rng, own, number)
        histories.append(own)
    # Feed order: by time, as a store records them; each incident's own order kept.
    for history in histories:
        feed += history
    return sorted(feed, key=lambda e: (e.occurred_at, e.aggregate_version))


def load_in_batches(db: ReadStore, feed: list[Envelope], rng: random.Random) -> ProjectionRunner:
    runner = ProjectionRunner(db, KpiProjection(ZONES))
    runner.setup()
    offset = 0
    while offset < len(feed):
        size = rng.choice((1, 2, 7, 50, 400))
        batch = list(enumerate(feed[offset : offset + size], start=offset))
        runner.apply_batch("test", 0, runner.position("test", 0), batch)
        offset += size
    return runner


def _mismatches(new: list[dict], old: list[dict], label: str) -> list[str]:
    if [r["period"] for r in new] != [r["period"] for r in old] or len(new) != len(old):
        return [f"{label}: rows {[r['period'] for r in new]} != {[r['period'] for r in old]}"]
    found = []
    for got, want in zip(new, old, strict=True):
        for name, expected in want.items():
            if not _same(name, got.get(name), expected):
                found.append(f"{label} {got['period']}: {name} {got.get(name)!r} != {expected!r}")
    return found


def _same(name: str, got: object, want: object) -> bool:
    if got is None or want is None or isinstance(want, str):
        return got == want
    tolerance = RELATIVE_ACCURACY if name in QUANTILES else 1e-9
    return math.isclose(got, want, rel_tol=tolerance, abs_tol=1e-9)  # type: ignore[arg-type]


def differences(db: ReadStore, seed: int, incidents: int = 60) -> list[str]:
    """Every figure on which the cells and the recomputation differ, on a random history."""
    feed = _feed(seed, incidents)
    runner = load_in_batches(db, feed, random.Random(seed))
    now = max(e.occurred_at for e in feed) + timedelta(days=2)
    # Quantiles from the bins of stale cells, then as the idle work stores them.
    found = _compare(db, now)
    runner.idle(force=True)
    return found + _compare(db, now)


def _compare(db: ReadStore, now: datetime) -> list[str]:
    found: list[str] = []
    with db.transaction(read_only=True) as tx:
        for tz in ZONES:
            for period in ("day", "week", "month"):
                for group_by in (None, *DIMENSIONS):
                    ask = {"period": period, "group_by": group_by, "tz": tz, "now": now}
                    new = kpis(tx, **ask)
                    old = oracle.kpis(tx, sla=False, **ask)
                    found += _mismatches(new, old, f"{tz} {period} {group_by}")
    return found


@pytest.fixture
def db(tmp_path):
    database = SqliteDatabase(tmp_path / "kpi.db")
    yield database
    database.close()


def assert_none(found: list[str]) -> None:
    assert not found, f"{len(found)} differences, e.g.:\n" + "\n".join(found[:20])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cells_equal_the_recomputation_for_every_kpi_period_dimension_and_zone(db, seed):
    assert_none(differences(db, seed))


@pytest.mark.parametrize("seed", [4, 5])
def test_cells_built_after_a_rebuild_are_the_rows_the_fold_writes(db, tmp_path, seed, monkeypatch):
    """A read model rebuilt from offset 0 folds only its facts while far behind its feed,
    owing its cells (readiness counts them). Once caught up, it counts the incidents whole,
    a few at a time, while later events of the incidents counted and not counted yet keep
    coming: the same rows, in both zones, as folding every event into the cells."""
    monkeypatch.setattr(kpi_facts, "BUILD_CHUNK", 7)
    feed = _late(_feed(seed, 80), at=len(_feed(seed, 80)) // 2 + 40)
    rebuild(db, feed)
    folded = SqliteDatabase(tmp_path / "folded.db")
    load_in_batches(folded, feed, random.Random(seed)).idle(force=True)
    assert_none(cell_differences(folded, db))
    assert_none(_compare(db, max(e.occurred_at for e in feed) + timedelta(days=2)))
    folded.close()


def _late(feed: list[Envelope], at: int) -> list[Envelope]:
    """The feed with the three incidents opened first arriving whole at `at`, as tickets
    imported late do: the build, counting in the order incidents were opened, has passed
    them by then, so they are counted as they come."""
    first = list(dict.fromkeys(e.aggregate_id for e in feed))[:3]
    late = [e for e in feed if e.aggregate_id in first]
    rest = [e for e in feed if e.aggregate_id not in first]
    return rest[:at] + late + rest[at:]


def rebuild(db: ReadStore, feed: list[Envelope]) -> ProjectionRunner:
    """Half the feed in batches far behind its end, owing the cells; the rest caught up,
    counting some incidents whole at each batch; then the idle work until nothing is owed."""
    runner = ProjectionRunner(db, KpiProjection(ZONES))
    runner.setup()
    half = len(feed) // 2
    for offset in range(0, len(feed), 20):
        batch = list(enumerate(feed[offset : offset + 20], start=offset))
        behind = len(feed) + BULK_BEHIND - offset if offset < half else 0
        runner.apply_batch("test", 0, offset, batch, behind=behind)
        if offset < half:
            assert runner.owed() > 0
            with db.transaction(read_only=True) as tx:
                assert tx.execute("SELECT COUNT(*) FROM kpi_cells").fetchone()[0] == 0
    owed = [runner.owed()]
    while owed[-1]:
        runner.idle(force=True)
        owed.append(runner.owed())
        assert owed[-1] < owed[-2], f"owed {owed} does not go down"
    runner.idle(force=True)
    return runner


CELL_TABLES = {
    "kpi_cells": 5,  # the key's columns
    "kpi_state_cells": 6,
    "kpi_ttr_bins": 6,
}


def cell_differences(one: ReadStore, other: ReadStore) -> list[str]:
    """The cells that differ (those that hold nothing are as good as none; sums in another
    order are equal to rounding)."""
    found = []
    for table, keys in CELL_TABLES.items():
        mine, theirs = _cells(one, table, keys), _cells(other, table, keys)
        for key in sorted(mine.keys() | theirs.keys()):
            if mine.get(key) != theirs.get(key):
                found.append(f"{table} {key}: {mine.get(key)} != {theirs.get(key)}")
    return found


def _cells(db: ReadStore, table: str, keys: int) -> dict[tuple, tuple]:
    with db.transaction(read_only=True) as tx:
        rows = tx.execute(f"SELECT * FROM {table}").fetchall()
    sums = ((tuple(r[:keys]), tuple(round(float(v), 6) + 0.0 for v in r[keys:])) for r in rows)
    return {key: values for key, values in sums if any(values)}


def test_ranges_starting_years_into_the_data_equal_the_recomputation(db, monkeypatch):
    """A range that starts late reads the state before it from the yearly, then monthly,
    rollups: histories over three years, ranges from a year's first day, and from days
    within a year and a month."""
    monkeypatch.setattr(sys.modules[__name__], "START", datetime(2024, 11, 3, 5, tzinfo=UTC))
    monkeypatch.setattr(sys.modules[__name__], "SPREAD_DAYS", 3 * 365)
    feed = _feed(7, 90)
    load_in_batches(db, feed, random.Random(7))
    assert_none(_late_ranges(db, max(e.occurred_at for e in feed) + timedelta(days=2)))


def test_cells_kept_without_yearly_rollups_get_them_once_at_set_up(db, monkeypatch):
    """A read model an earlier version built is not replayed: its yearly rollups are summed
    from its monthly rows when it is set up, once however often it is set up again."""
    assert_none(rollups_added_differences(db, monkeypatch))


def rollups_added_differences(db: ReadStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Cells over three years, their yearly rollups deleted, the read model set up twice:
    where late ranges differ from the recomputation."""
    monkeypatch.setattr(sys.modules[__name__], "START", datetime(2024, 11, 3, 5, tzinfo=UTC))
    monkeypatch.setattr(sys.modules[__name__], "SPREAD_DAYS", 3 * 365)
    feed = _feed(8, 60)
    load_in_batches(db, feed, random.Random(8))
    with db.transaction() as tx:
        tx.execute("DELETE FROM kpi_state_cells WHERE grain LIKE %s", ["%>year"])
    for _ in range(2):
        ProjectionRunner(db, KpiProjection(ZONES)).setup()
    return _late_ranges(db, max(e.occurred_at for e in feed) + timedelta(days=2))


LATE_STARTS = (datetime(2026, 7, 16, tzinfo=UTC), datetime(2026, 10, 28, 13, tzinfo=UTC))


def _late_ranges(db: ReadStore, now: datetime) -> list[str]:
    found: list[str] = []
    with db.transaction(read_only=True) as tx:
        # A year's start; mid-year, mid-month (the months and days before are summed); late in
        # a year and a month (the year and month less the months and days after).
        for start in (datetime(2026, 1, 1, 5, tzinfo=UTC), *LATE_STARTS):
            for period in ("day", "week", "month"):
                for group_by in (None, "group", "agent"):
                    ask = {"period": period, "group_by": group_by, "tz": ZONES[1]}
                    ask |= {"start": start, "end": now, "now": now}
                    label = f"from {start:%Y-%m-%d} {period} {group_by}"
                    found += _mismatches(kpis(tx, **ask), oracle.kpis(tx, **ask), label)
    return found
