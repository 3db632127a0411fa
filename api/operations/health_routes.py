"""Liveness and readiness for load balancers and orchestrators: no authentication."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api import problem_details as errors

router = APIRouter(tags=["operations"])


@router.get("/health/live", summary="The process answers")
def live() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/health/ready", summary="Databases, data directory and read models")
@router.get("/health", summary="Same as /health/ready")
def ready(request: Request) -> JSONResponse:
    """200 while this instance can serve (status `degraded` while a read model catches up
    or Kafka cannot be asked); 503 with a problem document and `Retry-After` while a
    database or the data directory fails, or a read model is stalled or has quarantined
    too many aggregates. Each component's status is in `components`."""
    is_ready, report = request.app.state.readiness.check()
    if is_ready:
        return JSONResponse(report)
    # The problem document's own `status` is the HTTP status (RFC 9457).
    details = {key: value for key, value in report.items() if key != "status"}
    return errors.unavailable(
        request, f"not ready: {', '.join(report['failing'])}", extensions=details
    )
