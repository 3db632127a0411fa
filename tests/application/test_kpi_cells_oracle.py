"""The KPI read model answers from pre-aggregated cells; on the real ServiceNow log
(../shared/data) its figures must be those of the recomputation from per-incident facts that
it replaced, kept as the oracle in tests/oracle/kpi_recomputation.py.

Both answer from the same database: the log is imported once into a real container (SQLite),
then every period, dimension and time zone is asked of both. Counts must be equal, ratios and
means equal to rounding; the median and p90 of time to resolve come from a mergeable quantile
sketch of relative accuracy 0.01, and are held to that.

On a 2-core machine the whole log takes 1.5 to 3 minutes to import, and the oracle needs about
half a minute per time zone for each daily query (it recomputes every cell from the
intervals): some 12 minutes in all. So by default only the first ITSM_KPI_ORACLE_ROWS rows of
the log are imported (10000: the tickets opened in its first days, and their updates into
2017; under a minute). ITSM_KPI_ORACLE_ROWS=0 imports the whole log.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import orjson
import pytest

from application.inbound.inbound_processor import InboundProcessor
from infra.composition_root import Container, bootstrap
from infra.importers.servicenow_import import snapshots
from infra.messaging.cloudevents import parse
from infra.settings import Settings
from projections.kpi import kpi_queries
from tests.data_files import servicenow_log
from tests.oracle import kpi_recomputation as oracle

ROWS = int(os.environ.get("ITSM_KPI_ORACLE_ROWS", "10000"))  # 0 = the whole log
ZONES = ("UTC", "America/New_York")
NOW = datetime(2017, 6, 1, tzinfo=timezone.utc)  # after the log's last update
PERIODS = ("day", "week", "month")
GROUP_BYS = (None, "group", "category", "priority", "service", "agent")
# Inside the log, not on period boundaries: the range is widened to whole weeks.
SUB_RANGE = (
    datetime(2016, 3, 3, 12, tzinfo=timezone.utc),
    datetime(2016, 5, 18, 6, tzinfo=timezone.utc),
)
RANGE_TEXT = f"from={SUB_RANGE[0].isoformat()} to={SUB_RANGE[1].isoformat()}"
SKETCHED = ("ttr_median_hours", "ttr_p90_hours")  # quantile sketch, relative accuracy 0.01
LABELS = ("period", "period_start", "period_end")
MAX_REPORTED = 20


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Iterator[Container]:
    """A container holding the first ROWS rows of the log, its read models caught up."""
    zones = {"kpi_zones": ZONES} if "kpi_zones" in Settings.model_fields else {}
    container = bootstrap(Settings(data_dir=tmp_path_factory.mktemp("kpi_oracle"), **zones))
    try:
        _import_log(container)
        yield container
    finally:
        container.close()


def _import_log(container: Container) -> None:
    events = [orjson.dumps(event) for _, event in snapshots(servicenow_log(), limit=ROWS or None)]
    processor = InboundProcessor(container.desk, parse=parse)
    outcomes = []
    for start in range(0, len(events), 1000):
        outcomes += processor.process_batch(events[start : start + 1000])
    assert {o.status for o in outcomes} == {"applied"}, [
        o for o in outcomes if o.status != "applied"
    ][:3]
    container.feed.catch_up()


@pytest.mark.parametrize("group_by", GROUP_BYS)
@pytest.mark.parametrize("period", PERIODS)
def test_the_cells_give_the_recomputed_kpis(imported, period, group_by):
    mismatches: list[str] = []
    with imported.read_db.transaction(read_only=True) as tx:
        for tz in ZONES:
            asked = (None, None, period, group_by, tz)
            old = oracle.kpis(tx, *asked, now=NOW, sla=True)
            assert old, "the oracle found no data: the import went wrong"
            new = read_model_kpis(tx, *asked)
            mismatches += differences(new, old, f"period={period} group_by={group_by} tz={tz}")
    if mismatches:
        pytest.fail(_report(mismatches))


@pytest.mark.parametrize("tz", ZONES)
def test_the_cells_give_the_recomputed_kpis_of_a_sub_range(imported, tz):
    mismatches: list[str] = []
    with imported.read_db.transaction(read_only=True) as tx:
        for group_by in GROUP_BYS:
            asked = (*SUB_RANGE, "week", group_by, tz)
            old = oracle.kpis(tx, *asked, now=NOW, sla=True)
            new = read_model_kpis(tx, *asked)
            context = f"{RANGE_TEXT} period=week group_by={group_by} tz={tz}"
            mismatches += differences(new, old, context)
    if mismatches:
        pytest.fail(_report(mismatches))


def read_model_kpis(tx, *asked: Any) -> list[dict]:
    """The read model's answer. `sla` only while kpis() takes it: the cells learn from the
    projection whether the SLA clocks share the database."""
    sla = {"sla": True} if "sla" in inspect.signature(kpi_queries.kpis).parameters else {}
    return kpi_queries.kpis(tx, *asked, now=NOW, **sla)


def differences(new: list[dict], old: list[dict], context: str) -> list[str]:
    """What differs between the new rows and the oracle's, each naming where."""
    found = [] if len(new) == len(old) else [f"{context}: {len(new)} rows, oracle {len(old)}"]
    for new_row, old_row in zip(new, old, strict=False):
        found += _row_differences(new_row, old_row, context)
        if len(found) >= MAX_REPORTED:
            break
    return found


def _row_differences(new: dict, old: dict, context: str) -> list[str]:
    where = f"{context} row {old['period']}" + "".join(
        f" {key}={old[key]!r}" for key in old if key not in LABELS and key not in oracle.KPI_FIELDS
    )
    if new.keys() != old.keys():
        return [f"{where}: keys {sorted(new.keys() ^ old.keys())} in one only"]
    return [
        f"{where} {key}: new {new[key]!r}, oracle {old[key]!r}"
        for key in old
        if not _agrees(key, new[key], old[key])
    ]


def _agrees(key: str, new: Any, old: Any) -> bool:
    if old is None or new is None or key not in oracle.KPI_FIELDS:
        return new == old and type(new) is type(old)
    if isinstance(old, int):
        return type(new) is int and new == old
    if key in SKETCHED:
        return abs(new - old) <= 0.01 * abs(old) + 1e-9
    return math.isclose(new, old, rel_tol=1e-9, abs_tol=1e-9)


def _report(mismatches: list[str]) -> str:
    shown = "\n".join(mismatches[:MAX_REPORTED])
    more = len(mismatches) - MAX_REPORTED
    return f"differences from the oracle (the first {MAX_REPORTED} of each query):\n{shown}" + (
        f"\n... and {more} more" if more > 0 else ""
    )
