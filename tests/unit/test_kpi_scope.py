"""A KPI over a scope and a stretch of time (projections/kpi/kpi_scope.py, what an
improvement's goal is measured by), both ways (`measure`, and `figure` over `scoped_views`),
is the figure the KPI read model gives when the stretch is one of its periods: on random
histories, for every KPI, per month and per week, for the whole desk and for each group,
category and priority as a scope."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

import pytest

from infra.sql.database import SqliteDatabase
from projections.kpi.kpi_queries import KPI_FIELDS, kpis
from projections.kpi.kpi_scope import ScopeFilter, figure, measure, scoped_views
from tests.unit.test_kpi_cells_match_recomputation import _feed, _same, load_in_batches

SCOPES = {"group": "groups", "category": "categories", "priority": "priorities"}


@pytest.fixture
def db(tmp_path):
    database = SqliteDatabase(tmp_path / "read.db")
    yield database
    database.close()


def _mismatches(db, now: datetime, period: str, group_by: str | None) -> list[str]:
    found = []
    with db.transaction(read_only=True) as tx:
        for row in kpis(tx, period=period, group_by=group_by, tz="UTC", now=now):
            start = datetime.fromisoformat(row["period_start"]).timestamp()
            end = datetime.fromisoformat(row["period_end"]).timestamp()
            values = [] if group_by is None or row[group_by] is None else [row[group_by]]
            if group_by is not None and not values:
                continue  # "no value" is not a scope one can ask for
            scope = ScopeFilter.of({SCOPES[group_by]: values} if group_by else {})
            views = scoped_views(tx, scope, start, end, intervals=True)
            for kpi in KPI_FIELDS:
                got = measure(tx, scope, kpi, start, end, now.timestamp()).value
                seen = figure(views, kpi, start, end, now.timestamp(), scope).value
                for way, value in (("measure", got), ("figure", seen)):
                    if not _same(kpi, value, row[kpi]):
                        found.append(f"{way} {period} {group_by}={values} {row['period']} {kpi}:")
                        found[-1] += f" {value!r} != {row[kpi]!r}"
    return found


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_kpi_over_a_scope_and_a_period_is_the_read_models_figure(db, seed):
    feed = _feed(seed, 80)
    runner = load_in_batches(db, feed, random.Random(seed))
    runner.idle(force=True)
    now = max(e.occurred_at for e in feed) - timedelta(days=3)  # some intervals still open
    found = []
    for period in ("month", "week"):
        for group_by in (None, *SCOPES):
            found += _mismatches(db, now, period, group_by)
    assert found == []


def test_a_scope_admits_by_every_listed_field_and_ticket_type():
    fact = {"service": "mail", "category": "email", "priority": "P2", "channel": "phone"}
    assert ScopeFilter.of({}).admits(fact)
    assert ScopeFilter.of({"services": ["mail", "web"], "priorities": ["P2"]}).admits(fact)
    assert not ScopeFilter.of({"channels": ["email"]}).admits(fact)
    assert not ScopeFilter.of({"ticket_types": ["change"]}).admits(fact)
    assert ScopeFilter.of({"ticket_types": ["change", "incident"]}).admits(fact)


def test_an_unknown_kpi_is_refused():
    with pytest.raises(ValueError, match="unknown KPI"):
        measure(None, ScopeFilter.of({}), "speed", 0.0, 1.0, 1.0)


def test_the_count_behind_a_figure_is_what_it_is_a_figure_of(db):
    feed = _feed(5, 60)
    load_in_batches(db, feed, random.Random(5))
    start, end = feed[0].occurred_at.timestamp(), feed[-1].occurred_at.timestamp() + 1
    scope = ScopeFilter.of({})
    with db.transaction(read_only=True) as tx:
        opened = measure(tx, scope, "opened", start, end, end)
        mean = measure(tx, scope, "ttr_mean_hours", start, end, end)
        resolved = measure(tx, scope, "resolved", start, end, end)
    assert opened.value == opened.count == 60
    assert mean.count == resolved.value and math.isfinite(mean.value)


def test_an_incident_as_of_an_earlier_position_stands_in_for_the_read_models(db):
    feed = _feed(6, 40)
    load_in_batches(db, feed, random.Random(6))
    start, end = feed[0].occurred_at.timestamp(), feed[-1].occurred_at.timestamp() + 1
    scope = ScopeFilter.of({})
    with db.transaction(read_only=True) as tx:
        first = tx.execute("SELECT incident_id FROM kpi_facts LIMIT 1").fetchone()[0]
        whole = measure(tx, scope, "opened", start, end, end)
        without = measure(tx, scope, "opened", start, end, end, {first: None})
    assert (whole.value, without.value) == (40, 39)


def test_intervals_long_before_the_stretch_count_as_recent_ones_do(db, monkeypatch):
    """The intervals read in two parts (entered shortly before, or long or open): with "long"
    an hour, nearly every one comes through the second part; the figures stay the same."""
    from projections.kpi import kpi_scope

    monkeypatch.setattr(kpi_scope, "LONG_SECONDS", 3600)
    monkeypatch.setattr(kpi_scope, "_LONG", "(i.left_s IS NULL OR i.left_s - i.entered_s > 3600)")
    feed = _feed(7, 80)
    load_in_batches(db, feed, random.Random(7))
    now = max(e.occurred_at for e in feed) - timedelta(days=3)
    assert _mismatches(db, now, "week", None) + _mismatches(db, now, "month", "group") == []
