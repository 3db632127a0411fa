"""The median and p90 time to resolve of each cell, kept beside its bins.

Quantiles do not add up, so a cell's cannot be updated by a change the way its counts are.
A change of a cell's bins marks its quantiles stale (a counter: `stale` counts the changes
not yet taken in); the read model's idle work recomputes stale cells from their bins and
clears the mark only if no change came in meanwhile. A query reads the stored figures, and
computes those of any stale cell it meets from the bins, so it is never behind.

Both ways find the ranks in SQL: each bin with the running count up to it and its cell's
total (window functions, on SQLite 3.28+ and PostgreSQL alike), keeping only the bins that
hold the median's or the p90's rank, so a cell costs a few rows, not its hundreds of bins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from projections.kpi.kpi_contributions import bin_value
from projections.runtime.read_store import Transaction

# A cell: (zone, grain, dimension, bucket, value).
Key = tuple[str, str, str, int, str]
Quantiles = tuple[float | None, float | None]
_KEY = "zone, grain, dim, bucket, value"
_HOLDS = "CAST(seen AS INTEGER) - CAST(c AS INTEGER) < {rank} AND {rank} <= CAST(seen AS INTEGER)"
_RANKS = (
    "(CAST(total AS INTEGER) + 1) / 2",
    "CAST(total AS INTEGER) / 2 + 1",
    "(9 * CAST(total AS INTEGER) + 9) / 10",
)
# The total is the running count's window over its whole partition: one sort for both.
RANKED = f"""
SELECT {_KEY}, bin, seen, c, total FROM (
  SELECT {_KEY}, bin, c,
         SUM(c) OVER cell AS seen,
         SUM(c) OVER (cell ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS total
  FROM ({{bins}}) AS g WHERE c > 0.5
  WINDOW cell AS (PARTITION BY {_KEY} ORDER BY bin)) AS w
WHERE {" OR ".join(f"({_HOLDS.format(rank=rank)})" for rank in _RANKS)}
"""


def ranked(tx: Transaction, bins: str, params: Sequence[object]) -> dict[Key, Quantiles]:
    """The quantiles of the cells of `bins`, a SELECT of (zone, grain, dim, bucket, value,
    bin, c): each bin's count."""
    holding: dict[Key, dict[int, int]] = defaultdict(dict)
    totals: dict[Key, int] = {}
    for row in tx.execute(RANKED.format(bins=bins), list(params)).fetchall():
        key: Key = (str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]))
        bin_, seen, count, total = int(row[5]), round(row[6]), round(row[7]), round(row[8])
        totals[key] = total
        for rank in ranks(total):
            if seen - count < rank <= seen:
                holding[key][rank] = bin_
    return {key: median_p90(holding[key], total) for key, total in totals.items()}


def ranks(count: int) -> tuple[int, int, int]:
    """The ranks of the median (the two middle ones) and of the nearest-rank p90."""
    return (count + 1) // 2, count // 2 + 1, max(-(-9 * count // 10), 1)


def median_p90(holding: dict[int, int], count: int) -> Quantiles:
    """The median (mean of the two middle values for an even count) and the p90, from the
    bins holding their ranks: each within the bins' relative accuracy."""
    if not count:
        return None, None
    low, high, p90 = (bin_value(holding[rank]) for rank in ranks(count))
    return (low + high) / 2 if count % 2 == 0 else low, p90


def refresh(tx: Transaction) -> int:
    """Recompute the stale cells; how many there were. A cell changed meanwhile (by another
    member of the read model) keeps its mark: the guard is the count read with it."""
    stale = tx.execute(f"SELECT {_KEY}, stale FROM kpi_ttr_quantiles WHERE stale > 0").fetchall()
    if not stale:
        return 0
    figures = ranked(tx, _STALE_BINS, [])
    tx.executemany(
        "UPDATE kpi_ttr_quantiles SET median_s = %s, p90_s = %s, stale = 0"
        " WHERE zone = %s AND grain = %s AND dim = %s AND bucket = %s AND value = %s"
        " AND stale = %s",
        [_update(row, figures) for row in sorted(stale, key=_marked_order)],
    )
    return len(stale)


def _marked_order(row: Sequence[Any]) -> tuple[Any, ...]:
    """The order writers mark cells stale in (kpi_cell_store.write: zone, grain, bucket,
    dimension, value): on PostgreSQL a member's refresh and another's batch then lock the
    marks they share in one order, and cannot deadlock."""
    return row[0], row[1], row[3], row[2], row[4]


def _update(row: Sequence[Any], figures: dict[Key, Quantiles]) -> list[object]:
    key: Key = (str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]))
    return [*figures.get(key, (None, None)), *key, row[5]]


# The bins of the stale cells, found from the stale cells (their partial index), then each
# cell's bins by the key. Left to itself, SQLite scans every bin and looks its cell up: at a
# million incidents, seconds for a handful of stale cells. Its CROSS JOIN keeps the order;
# PostgreSQL plans it as any inner join.
_STALE_BINS = (
    "SELECT b.zone, b.grain, b.dim, b.bucket, b.value, b.bin, b.count AS c"
    " FROM kpi_ttr_quantiles q CROSS JOIN kpi_ttr_bins b WHERE q.stale > 0"
    " AND b.zone = q.zone AND b.grain = q.grain AND b.dim = q.dim AND b.bucket = q.bucket"
    " AND b.value = q.value"
)


def stored(
    tx: Transaction, where: str, params: Sequence[object]
) -> tuple[dict[tuple[int, str], Quantiles], list[tuple[int, str]]]:
    """The stored quantiles of the cells of `where` (over kpi_ttr_quantiles), by (bucket,
    value), and the cells among them that are stale."""
    rows = tx.execute(
        f"SELECT bucket, value, median_s, p90_s, stale FROM kpi_ttr_quantiles WHERE {where}",
        list(params),
    ).fetchall()
    figures = {(int(r[0]), str(r[1])): (r[2], r[3]) for r in rows}
    return figures, [(int(r[0]), str(r[1])) for r in rows if r[4]]


def fresh(
    tx: Transaction, where: str, params: Sequence[object], cells: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], Quantiles]:
    """The quantiles of `cells` (bucket, value) of `where`, from their bins: those of their
    buckets only, not of the whole range a query reads."""
    wanted = dict.fromkeys(cells, (None, None))  # no bins left: no figure
    if not wanted:
        return {}
    buckets = sorted({bucket for bucket, _ in wanted})
    among = f"bucket IN ({', '.join(['%s'] * len(buckets))})"
    bins = f"SELECT {_KEY}, bin, count AS c FROM kpi_ttr_bins WHERE {where} AND {among}"
    figures = ranked(tx, bins, [*params, *buckets])
    return {**wanted, **{(k[3], k[4]): q for k, q in figures.items() if (k[3], k[4]) in wanted}}
