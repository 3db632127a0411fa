"""Where the shared data lives: ../shared/data beside the repository, as on CI machines; and
the order in which the inbound consumer applies the ServiceNow log's rows, computed from the
raw CSV alone (csv + gzip + datetime), so that it can check the importer."""

from __future__ import annotations

import csv
import gzip
import os
from collections import defaultdict
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def servicenow_log() -> Path:
    """The real ServiceNow audit log. A missing file fails the test: it is never skipped."""
    path = Path(
        os.environ.get(
            "ITSM_SERVICENOW_LOG", ROOT.parent / "shared" / "data" / "incident_event_log.csv.gz"
        )
    )
    if not path.exists():
        raise FileNotFoundError(
            f"the ServiceNow log is not at {path}: clone the repository beside shared/, or "
            "set ITSM_SERVICENOW_LOG to the file"
        )
    return path


def servicenow_histories(path: Path, limit: int | None = None) -> dict[str, list[dict]]:
    """Per incident number, its rows among the first `limit` in the documented sending order
    (docs/inbound.md): by sys_mod_count, the latest sys_updated_at first among equal counts,
    file order among rows equal in both. Rows in state -100 are not snapshots."""
    rows: dict[str, list[dict]] = defaultdict(list)
    with gzip.open(path, "rt", newline="") as text:
        for index, row in enumerate(csv.DictReader(text)):
            if limit and index >= limit:
                break
            if row["incident_state"] != "-100":
                rows[row["number"]].append(row)
    return {number: sorted(history, key=_sending_order) for number, history in rows.items()}


def _sending_order(row: dict) -> tuple:
    updated = datetime.strptime(row["sys_updated_at"], "%d/%m/%Y %H:%M")
    return int(row["sys_mod_count"]), datetime.max - updated  # sorted() is stable on ties


def applied_rows(history: list[dict]) -> list[dict]:
    """The rows the consumer applies: each one whose sys_mod_count is above the last applied."""
    applied: list[dict] = []
    for row in history:
        if not applied or int(row["sys_mod_count"]) > int(applied[-1]["sys_mod_count"]):
            applied.append(row)
    return applied
