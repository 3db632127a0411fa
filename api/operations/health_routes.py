"""Liveness and readiness for load balancers and orchestrators: no authentication."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api import problem_details as errors

router = APIRouter(tags=["operations"])


class Live(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """The instance can serve: `degraded` while a read model catches up."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded"]
    failing: list[str] = Field(description="Components that stop this instance serving")
    components: dict[str, dict[str, Any]] = Field(
        description="event_store, read_database, data_dir, projections (one per read model)"
        " and kafka, each with its status"
    )


class NotReady(errors.ProblemDetails):
    """A 503 problem that also carries the readiness report's fields."""

    model_config = ConfigDict(extra="allow")

    failing: list[str]
    components: dict[str, dict[str, Any]]


NOT_READY = errors.problem_responses(503, model=NotReady)


@router.get("/health/live", summary="The process answers", response_model=Live)
def live() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get(
    "/health/ready",
    summary="Databases, data directory and read models",
    response_model=Readiness,
    responses=NOT_READY,
)
@router.get(
    "/health", summary="Same as /health/ready", response_model=Readiness, responses=NOT_READY
)
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
