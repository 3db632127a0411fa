"""Where the shared data lives: ../shared/data beside the repository, as on CI machines."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def servicenow_log() -> Path:
    """The real ServiceNow audit log. A missing file fails the test: it is never skipped."""
    path = Path(os.environ.get("ITSM_SERVICENOW_LOG",
                               ROOT.parent / "shared" / "data" / "incident_event_log.csv.gz"))
    if not path.exists():
        raise FileNotFoundError(
            f"the ServiceNow log is not at {path}: clone the repository beside shared/, or "
            "set ITSM_SERVICENOW_LOG to the file")
    return path
