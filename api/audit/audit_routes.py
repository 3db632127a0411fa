"""The audit trail: every event of one aggregate, whatever its type."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from api.audit.audit_schemas import AggregateState, AuditEvent, InclusionProof
from api.deps import AccessDep, ContainerDep, ReadDbDep, require
from api.personal_data import SEALED_HEADER
from api.problem_details import problem_responses
from api.query_values import MOMENT_PATTERN, moment
from application.access import Principal, Role
from projections.audit import audit_trail

PROBLEMS = problem_responses(401, 403, 404, 422)
PROOF_PROBLEMS = problem_responses(409)
router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=PROBLEMS)

Auditor = Annotated[Principal, Depends(require(Role.AUDITOR, Role.MANAGER))]


@router.get(
    "/aggregates/{aggregate_id}/events",
    operation_id="aggregate_events",
    summary="Every event of one aggregate",
)
def aggregate_events(
    aggregate_id: UUID,
    db: ReadDbDep,
    container: ContainerDep,
    principal: Auditor,
    accessed: AccessDep,
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
    kind = entries[0]["aggregate_type"] if entries else ""
    accessed(principal, "read_audit", kind, str(aggregate_id))
    return [AuditEvent(**entry) for entry in entries]


@router.get(
    "/events/{event_id}/proof",
    operation_id="event_proof",
    summary="Proof that one event is in the signed log",
    responses=PROOF_PROBLEMS,
)
def event_proof(
    event_id: UUID,
    db: ReadDbDep,
    container: ContainerDep,
    principal: Auditor,
    accessed: AccessDep,
    response: Response,
) -> InclusionProof:
    """The event as stored, its hash, and its Merkle path to the checkpoint that signed
    it: enough to prove one decision (a breach, an approval) without the rest of the log.
    Personal data stay sealed, as stored (the hash covers them so).

    A 409 while no checkpoint has signed the event yet (they are taken every
    ITSM_AUDIT_CHECKPOINT_EVENTS events or ITSM_AUDIT_CHECKPOINT_SECONDS).
    """
    with db.transaction(read_only=True) as tx:
        position = audit_trail.position_of(tx, str(event_id))
    proven = container.proven_events()
    found = list(proven.of([position])) if position is not None else []
    if not found:
        raise HTTPException(404, f"The audit trail has no event with id {event_id}.")
    accessed(principal, "read_proof", "Event", str(event_id), str(found[0]["aggregate_id"]))
    checkpoint = next(c for c in proven.checkpoints() if c.seq == found[0]["checkpoint"])
    # As stored: the hash covers the sealed bytes, so personal data stay sealed here.
    response.headers[SEALED_HEADER] = "sealed"
    return InclusionProof.model_validate({"event": found[0], "checkpoint": checkpoint.as_dict()})


@router.get(
    "/aggregates/{aggregate_id}/state",
    operation_id="aggregate_state_as_of",
    summary="Any aggregate as it stood at a past moment",
)
def aggregate_state(
    aggregate_id: UUID,
    as_of: Annotated[str, Query(pattern=MOMENT_PATTERN, max_length=40)],
    container: ContainerDep,
    principal: Auditor,
    accessed: AccessDep,
) -> AggregateState:
    """Folded from its stored events up to `as_of`: incidents and improvements as their
    records, any other type (SLA policy, API key, source ticket...) as every field its
    events last recorded. A 404 if it did not exist then."""
    when = moment(as_of, "as_of")
    assert when is not None  # as_of is required
    events = container.published_events(str(aggregate_id))
    found = audit_trail.state_as_of(events, when)
    if found is None:
        raise HTTPException(404, f"No aggregate {aggregate_id} existed at {when.isoformat()}.")
    accessed(principal, "read_as_of", events[0].aggregate_type, str(aggregate_id), as_of)
    version, record = found
    return AggregateState(
        aggregate_id=str(aggregate_id),
        aggregate_type=events[0].aggregate_type,
        version=version,
        as_of=when.isoformat(),
        state=record,
    )
