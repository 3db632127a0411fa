"""Liveness and readiness for load balancers and orchestrators: no authentication."""
from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ContainerDep
from infra.sql import Database

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


def _check(db: Database) -> str:
    try:
        with db.transaction(read_only=True) as tx:
            tx.execute("SELECT 1").fetchone()
        return "ok"
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        log.warning("health check failed on %s: %r", type(db).__name__, exc)
        return "unavailable"


@router.get("/health", summary="Check both databases")
def health(container: ContainerDep) -> JSONResponse:
    """503 unless the event store and the read-model database both answer a query."""
    report = {
        "event_store": _check(container.store_db),
        "read_models": _check(container.read_db),
        "kafka": "configured" if container.uses_kafka else "embedded",
    }
    healthy = report["event_store"] == report["read_models"] == "ok"
    body = {"status": "ok" if healthy else "unavailable", **report}
    return JSONResponse(body, status_code=200 if healthy else 503)
