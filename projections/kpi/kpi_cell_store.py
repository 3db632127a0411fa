"""The KPI cells in the read database: their tables, and a batch's changes added to them.

`kpi_cells` holds the moment measures, `kpi_state_cells` the state measures (per step: a
state, or `on_hold:<reason>`), `kpi_ttr_bins` the time-to-resolve bins; each keyed by the
reporting zone, the grain (`day`, `week`, `month`, and the rollups of
projections/kpi/kpi_buckets.py), the bucket, the dimension and its value
(projections/kpi/kpi_contributions.py says what they mean). Changes are added with one
upsert per touched cell, in the projection's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from projections.kpi.kpi_buckets import GRAINS, MONTHLY, YEARLY
from projections.kpi.kpi_contributions import MOMENT_MEASURES, STATE_MEASURES, CellRows
from projections.runtime.read_store import CLUSTERED, Transaction

_KEY = "zone TEXT NOT NULL, grain TEXT NOT NULL, bucket INTEGER NOT NULL, dim TEXT NOT NULL,"
_KEY += " value TEXT NOT NULL"
_PK = "zone, grain, dim, bucket, value"
# An interval still open or longer than LONG_SECONDS (a partial index holds those).
LONG_SECONDS = 30 * 86400
LONG_INTERVAL = f"(left_s IS NULL OR left_s - entered_s > {LONG_SECONDS})"
TABLES = ("kpi_cells", "kpi_state_cells", "kpi_ttr_bins", "kpi_ttr_quantiles", "kpi_meta")


def _columns(names: tuple[str, ...]) -> str:
    return ", ".join(f"{name} DOUBLE PRECISION NOT NULL" for name in names)


DDL = (
    f"CREATE TABLE IF NOT EXISTS kpi_cells ({_KEY}, {_columns(MOMENT_MEASURES)},"
    f" PRIMARY KEY ({_PK})){CLUSTERED}",
    f"CREATE TABLE IF NOT EXISTS kpi_state_cells ({_KEY}, step TEXT NOT NULL,"
    # The step before the bucket: a query reads the four states' rows of a bucket range, not
    # the hold reasons' beside them.
    f" {_columns(STATE_MEASURES)}, PRIMARY KEY (zone, grain, dim, step, bucket, value)){CLUSTERED}",
    f"CREATE TABLE IF NOT EXISTS kpi_ttr_bins ({_KEY}, bin INTEGER NOT NULL,"
    f" count DOUBLE PRECISION NOT NULL, PRIMARY KEY ({_PK}, bin)){CLUSTERED}",
    # Each cell's median and p90 time to resolve, recomputed from its bins when they have
    # changed (`stale`) by the read model's idle work, and by a query that meets one stale.
    f"CREATE TABLE IF NOT EXISTS kpi_ttr_quantiles ({_KEY}, median_s DOUBLE PRECISION,"
    f" p90_s DOUBLE PRECISION, stale INTEGER NOT NULL, PRIMARY KEY ({_PK})){CLUSTERED}",
    "CREATE INDEX IF NOT EXISTS kpi_ttr_quantiles_stale ON kpi_ttr_quantiles (stale)"
    " WHERE stale > 0",
    "CREATE TABLE IF NOT EXISTS kpi_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def _upsert(table: str, keys: tuple[str, ...], measures: tuple[str, ...]) -> str:
    columns = (*keys, *measures)
    added = ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in measures)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


_CELL_KEY = ("zone", "grain", "bucket", "dim", "value")
_MOMENTS = _upsert("kpi_cells", _CELL_KEY, MOMENT_MEASURES)
_STATES = _upsert("kpi_state_cells", (*_CELL_KEY, "step"), STATE_MEASURES)
_BINS = _upsert("kpi_ttr_bins", (*_CELL_KEY, "bin"), ("count",))
_STALE = (
    f"INSERT INTO kpi_ttr_quantiles ({', '.join(_CELL_KEY)}, stale) VALUES (%s, %s, %s, %s, %s, 1)"
    f" ON CONFLICT ({', '.join(_CELL_KEY)}) DO UPDATE SET stale = kpi_ttr_quantiles.stale + 1"
)


def write(tx: Transaction, changes: CellRows) -> None:
    """Add the changes to the cells (CellChanges.rows: a change that cancelled out is not
    there). Every writer holds the cells first (`hold_cells`), so their rows go in any
    order; the quantiles' marks, which the idle work also updates, go in key order."""
    stale = sorted({row[:5] for row in changes.bins})
    for sql, rows in (
        (_MOMENTS, changes.moments),
        (_STATES, changes.states),
        (_BINS, changes.bins),
        (_STALE, stale),
    ):
        if rows:
            tx.executemany(sql, rows)


def add_yearly_rollups(tx: Transaction, zones: list[str]) -> None:
    """The yearly rollups (projections/kpi/kpi_buckets.py) of cells an earlier version kept
    without them, summed from their monthly rows; for a zone that has none yet. Members of
    one read model that start at once take turns on a meta row, so only the first adds."""
    tx.execute(
        "INSERT INTO kpi_meta (name, value) VALUES ('yearly_rollups', '1') ON CONFLICT (name)"
        " DO UPDATE SET value = kpi_meta.value"
    )
    for zone in zones:
        if _has(tx, zone, YEARLY["month"]) or not _has(tx, zone, "month"):
            continue
        for grain in GRAINS:
            tx.execute(
                _YEARLY_FROM_MONTHLY.format(monthly=MONTHLY.get(grain, "month")),
                [YEARLY[grain], zone],
            )


def _has(tx: Transaction, zone: str, grain: str) -> bool:
    found = tx.execute(
        "SELECT 1 FROM kpi_state_cells WHERE zone = %s AND grain = %s LIMIT 1", [zone, grain]
    ).fetchone()
    return found is not None


# Month keys are year * 12 + month - 1: a year is the key divided by 12 (integer division in
# both engines). Only the measures a prefix reads go up (weight and entries stay per bucket).
_YEARLY_FROM_MONTHLY = (
    "INSERT INTO kpi_state_cells (zone, grain, bucket, dim, value, step, delta, weight, entered,"
    " runs, open_runs) SELECT zone, %s, bucket / 12, dim, value, step, SUM(delta), 0, 0,"
    " SUM(runs), SUM(open_runs) FROM kpi_state_cells WHERE zone = %s AND grain = '{monthly}'"
    " GROUP BY zone, bucket / 12, dim, value, step ON CONFLICT (zone, grain, dim, step, bucket,"
    " value) DO UPDATE SET delta = kpi_state_cells.delta + excluded.delta,"
    " runs = kpi_state_cells.runs + excluded.runs,"
    " open_runs = kpi_state_cells.open_runs + excluded.open_runs"
)


# The cells' meta row: empty while they count every incident; `owed:` and the last incident
# they count (its BuildKey) while a rebuild folds only the facts, then counts its incidents
# once caught up, in the order they were opened (projections/kpi/kpi_facts.py).
OWED = "owed"
# Where an incident stands in a build's order: (opened_s, incident_id). When it was opened
# never changes, and incidents opened close together share cells: a build's step that
# counts them writes each of their cells once, not once per step.
BuildKey = tuple[float, str]
NONE_COUNTED: BuildKey = (float("-inf"), "")
# The facts after an incident in a build's order (two parameters: its BuildKey).
AFTER_KEY = "(opened_s, incident_id) > (%s, %s)"


def counted_upto(mode: str) -> BuildKey | None:
    """The last incident the cells count, from their meta row; None: every one."""
    if not mode.startswith(f"{OWED}:"):
        return None
    opened, _, incident_id = mode.removeprefix(f"{OWED}:").partition(":")
    return (float(opened), incident_id) if opened else NONE_COUNTED


def owed_upto(key: BuildKey) -> str:
    """The meta row of cells that count up to the incident `key`."""
    return f"{OWED}:" if key == NONE_COUNTED else f"{OWED}:{key[0]!r}:{key[1]}"


def counts(upto: BuildKey | None, fact: Mapping[str, Any] | None) -> bool:
    """Whether cells that count up to `upto` count the incident of `fact` (none: no cell)."""
    return upto is None or (fact is not None and (fact["opened_s"], fact["incident_id"]) <= upto)


def hold_cells(tx: Transaction) -> str:
    """Hold the cells until the transaction ends, and say whether they are OWED. An
    incident's cells are changed by the member that folds its events, and by any member that
    counts its SLA verdict or its source ticket's: two at once would each diff against the
    other's old state, and one change would be lost. So the members of the read model change
    cells one at a time."""
    row = tx.execute(
        "INSERT INTO kpi_meta (name, value) VALUES ('cells', '') ON CONFLICT (name)"
        " DO UPDATE SET value = kpi_meta.value RETURNING value"
    ).fetchone()
    return "" if row is None else str(row[0])


def meta(tx: Transaction, name: str) -> str | None:
    row = tx.execute("SELECT value FROM kpi_meta WHERE name = %s", [name]).fetchone()
    return None if row is None else str(row[0])


def set_meta(tx: Transaction, name: str, value: str) -> None:
    tx.execute(
        "INSERT INTO kpi_meta (name, value) VALUES (%s, %s)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [name, value],
    )
