"""Prometheus scrape endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from api.deps import require
from api.operations.http_metrics import CONTENT_TYPE
from application.access import Principal, Role

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
def scrape(request: Request, _: Annotated[Principal, Depends(require(Role.ANALYST))]) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
