"""The proof on the real log: the UCI 498 ServiceNow audit log, imported through Kafka and the
inbound consumer into the read models, agrees exactly with an independent computation from
the raw CSV.

The expected side uses nothing of the project: csv + gzip + datetime, and the contract of
the incident.snapshot mapper written out again here and in tests/data_files.py:

* rows of one incident are taken by sys_mod_count, the latest sys_updated_at first among
  equal counts (tests.data_files.servicenow_histories); a row whose sys_mod_count is not
  greater than that of the last applied row is stale and ignored, so the final state is that
  of the last record in this order; rows in state -100 are not snapshots (the importer skips
  them);
* reopens = rises of reopen_count between consecutive applied rows;
* assignment-group changes = consecutive applied rows whose groups are both set and differ;
* opened at `opened_at`; first resolved at `sys_updated_at` of the first applied row in state
  Resolved (or Closed, for the few tickets closed without a Resolved row: our lifecycle
  resolves before it closes).

`ITSM_E2E_LOG_LIMIT=N` runs on the first N rows only (development).
"""

from __future__ import annotations

import os
import statistics
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bench.servicenow_replay import replay
from projections.kpi.kpi_contributions import RELATIVE_ACCURACY
from tests.data_files import applied_rows, servicenow_histories, servicenow_log

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

pytestmark = pytest.mark.slow


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%d/%m/%Y %H:%M").replace(tzinfo=timezone.utc)


def expected_from_csv(path: Path, limit: int | None = None) -> dict[str, dict]:
    """Per incident number: final state, reopens, group changes, opened and first resolved."""
    result = {}
    for number, history in servicenow_histories(path, limit).items():
        applied = applied_rows(history)
        reopens = sum(
            int(b["reopen_count"]) > int(a["reopen_count"])
            for a, b in zip(applied, applied[1:], strict=False)
        )
        moves = sum(
            a["assignment_group"] != "?"
            and b["assignment_group"] != "?"
            and a["assignment_group"] != b["assignment_group"]
            for a, b in zip(applied, applied[1:], strict=False)
        )
        resolved = next(
            (r["sys_updated_at"] for r in applied if r["incident_state"] in ("Resolved", "Closed")),
            None,
        )
        result[number] = {
            "state": STATES[applied[-1]["incident_state"]],
            "reopens": reopens,
            "group_changes": moves,
            "opened": _time(applied[0]["opened_at"]),
            "resolved": _time(resolved) if resolved else None,
        }
    return result


def expected_kpis(incidents: dict[str, dict]) -> dict[str, dict]:
    """Per month of first resolution (UTC): resolved, reopen rate, mean and median TTR."""
    months: dict[str, list[dict]] = defaultdict(list)
    for incident in incidents.values():
        if incident["resolved"] is not None:
            months[incident["resolved"].strftime("%Y-%m")].append(incident)
    result = {}
    for month, cohort in months.items():
        seconds = [int((i["resolved"] - i["opened"]).total_seconds()) for i in cohort]
        result[month] = {
            "resolved": len(cohort),
            "reopen_rate": sum(i["reopens"] > 0 for i in cohort) / len(cohort),
            "ttr_mean_hours": sum(seconds) / len(seconds) / 3600,
            "ttr_median_hours": statistics.median(seconds) / 3600,
        }
    return result


def test_the_real_log_through_kafka_agrees_with_the_raw_csv(
    kafka_bootstrap, kafka_topic_prefix, tmp_path
):
    limit = int(os.environ["ITSM_E2E_LOG_LIMIT"]) if os.environ.get("ITSM_E2E_LOG_LIMIT") else None
    log = servicenow_log()
    expected = expected_from_csv(log, limit)
    started = time.perf_counter()
    result, container = replay(
        log,
        kafka_bootstrap,
        tmp_path,
        partitions=3,
        limit=limit,
        projections=["kpis"],
        prefix=kafka_topic_prefix,
        show_progress=False,
    )
    try:
        print(f"\n{result.report()}\n(total {time.perf_counter() - started:.1f} s)")
        from projections.kpi.kpi_queries import kpis

        with container.read_db.transaction(read_only=True) as tx:
            facts = tx.execute(
                "SELECT external_ref, state, reopen_count, reassignment_count, opened_s,"
                " first_resolved_s FROM kpi_facts"
            ).fetchall()
            monthly = kpis(tx, period="month")
    finally:
        container.close()

    actual = {
        ref: {
            "state": state,
            "reopens": reopens,
            "group_changes": moves,
            "ttr": None if resolved is None else resolved - opened,
        }
        for ref, state, reopens, moves, opened, resolved in facts
    }
    assert len(actual) == len(facts)  # one fact row per source ticket
    assert set(actual) == set(expected), "the incidents differ"
    want = {
        ref: {
            "state": e["state"],
            "reopens": e["reopens"],
            "group_changes": e["group_changes"],
            "ttr": None if e["resolved"] is None else (e["resolved"] - e["opened"]).total_seconds(),
        }
        for ref, e in expected.items()
    }
    for field in ("state", "reopens", "group_changes", "ttr"):
        wrong = sorted(ref for ref in want if want[ref][field] != actual[ref][field])
        assert not wrong, f"{field} differs for {len(wrong)} incidents, e.g. " + "; ".join(
            f"{r}: want {want[r][field]}, got {actual[r][field]}" for r in wrong[:5]
        )

    got = {
        row["period"]: {
            k: row[k] for k in ("resolved", "reopen_rate", "ttr_mean_hours", "ttr_median_hours")
        }
        for row in monthly
        if row["resolved"]
    }
    want_kpis = expected_kpis(expected)
    medians = {
        p: (got[p].pop("ttr_median_hours"), want_kpis[p].pop("ttr_median_hours")) for p in got
    }
    assert got == want_kpis
    # The median comes from logarithmic bins: within their relative accuracy (docs/kpis.md).
    assert all(m == pytest.approx(w, rel=RELATIVE_ACCURACY) for m, w in medians.values()), medians
    # Its first row in the file is an older Active record that carries the sys_mod_count of
    # the closing one: only the documented order lets the closing record win.
    assert actual["INC0000135"]["state"] == "closed"
    if limit is None:
        assert len(expected) == 20_769
