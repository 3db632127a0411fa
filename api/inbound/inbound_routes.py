"""Inbound events from upstream systems (CloudEvents over HTTP).

The body goes, as raw bytes, through the same `InboundProcessor` as the Kafka consumer of
itsm.inbound. Applied and duplicate answer 200 with the outcome; a rejection answers a
problem document and writes nothing: 413 too large, 400 not JSON, 422 not a CloudEvent /
unknown type / data not matching its schema / a value the domain refuses, 409 a transition
the incident's lifecycle does not allow.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import ContainerDep, require
from api.inbound.inbound_document import EXAMPLE, cloudevent_schema
from api.problem_details import problem, problem_responses
from application.access import Principal, Role
from application.inbound.inbound_message import Outcome

router = APIRouter(prefix="/v1/inbound", tags=["inbound"])
Integration = Annotated[Principal, Depends(require(Role.INTEGRATION))]

TITLES = {
    "too-large": "Message too large",
    "malformed": "Malformed JSON",
    "not-a-cloudevent": "Not a CloudEvent",
    "unknown-type": "Unknown event type",
    "invalid-data": "Invalid event data",
    "invalid-value": "Invalid value",
    "illegal-transition": "Illegal transition",
}


_MEDIA = {"schema": cloudevent_schema(), "example": EXAMPLE}
CLOUDEVENT_BODY = {
    "required": True,
    "content": {"application/cloudevents+json": _MEDIA, "application/json": _MEDIA},
}


class InboundResult(BaseModel):
    status: str  # applied | duplicate
    effect: str | None = None  # opened, applied, stale, attached, reopened, resolved, ...
    incident_id: str | None = None
    source: str | None = None
    event_id: str | None = None
    type: str | None = None


async def _body(request: Request, limit: int) -> bytes:
    """The body, cut one byte past the limit: enough for the processor to refuse it."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break
    return bytes(body[: limit + 1])


@router.post(
    "",
    summary="Receive one CloudEvent (structured mode, JSON)",
    response_model=InboundResult,
    responses=problem_responses(400, 401, 403, 409, 413, 422),
    openapi_extra={"requestBody": CLOUDEVENT_BODY},
)
async def receive(request: Request, container: ContainerDep, _: Integration) -> Any:
    """Types: alert.fired, alert.resolved, incident.snapshot (schemas in schemas/inbound/).
    The same (source, id) twice is applied once: the second answers status duplicate."""
    processor = container.inbound
    raw = await _raw(request, processor.max_bytes)
    outcome = await anyio.to_thread.run_sync(processor.process, raw)
    return _answer(request, outcome)


async def _raw(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return b"x" * (limit + 1)  # refused by the processor, unread
    return await _body(request, limit)


def _answer(request: Request, outcome: Outcome) -> JSONResponse:
    if outcome.status == "rejected":
        return problem(
            request,
            outcome.http_status,
            outcome.reason,
            kind=f"inbound-{outcome.kind}",
            title=TITLES.get(outcome.kind or ""),
        )
    body = {k: v for k, v in outcome.as_dict().items() if k in InboundResult.model_fields}
    return JSONResponse(body, status_code=200)
