"""The audit trail: every event of one aggregate, whatever its type."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException

from api.audit.audit_schemas import AuditEvent
from api.deps import ContainerDep, ReadDbDep, require
from api.problem_details import problem_responses
from application.access import Principal, Role
from projections.audit import audit_trail

PROBLEMS = problem_responses(401, 403, 404, 422)
router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEMS)

Auditor = Annotated[Principal, Depends(require(Role.AUDITOR, Role.MANAGER))]


@router.get(
    "/aggregates/{aggregate_id}/events",
    operation_id="aggregate_events",
    summary="Every event of one aggregate",
)
def aggregate_events(
    aggregate_id: UUID, db: ReadDbDep, container: ContainerDep, _: Auditor
) -> list[AuditEvent]:
    """An incident, SLA policy, source ticket, alert fingerprint, inbound receipt...: who
    acted, on behalf of which request, when, and what changed, oldest first.

    The trail follows the event store a moment behind: an aggregate it has not reached yet
    has no events here; one the event store does not know is a 404.
    """
    with db.transaction(read_only=True) as tx:
        entries = audit_trail.entries(tx, str(aggregate_id))
    if not entries and not container.published_events(str(aggregate_id)):
        raise HTTPException(404, f"The event store has no aggregate with id {aggregate_id}.")
    return [AuditEvent(**entry) for entry in entries]
