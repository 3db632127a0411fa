"""Verification by replay over HTTP: a control table computed from the history now (a
progress view, or recorded in review), and a recorded one computed again from its pins.

The figures are the application's (application/improvement/verification.py); recording is
one command through the desk, like every other.
"""

from __future__ import annotations

from typing import Annotated, Any, cast
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Response

from api.deps import ContainerDep, IfMatchHeader, RequestIdDep, ensure_role, parse_if_match, require
from api.improvement.improvement_routes import OWNERS, READERS, WORKERS, _context
from api.improvement.improvement_schemas import (
    ControlRowPublic,
    ReproductionPublic,
    VerificationPublic,
    VerifyRequest,
)
from api.problem_details import problem_responses
from application.access import Principal
from application.desk.errors import NotFound
from application.improvement.verification import Pins, recorded
from domain.improvement.commands import RecordVerification
from domain.improvement.design import Scope, control_table
from domain.improvement.improvement import Improvement

router = APIRouter(
    prefix="/v1/improvements",
    tags=["improvements"],
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
)
Reader = Annotated[Principal, Depends(require(*READERS))]
RECORDERS = tuple(dict.fromkeys((*WORKERS, *OWNERS)))


@router.post(
    "/{improvement_id}/verify",
    operation_id="verify_improvement",
    summary="Verify the goals by replay: the control table now",
)
async def verify_improvement(
    improvement_id: UUID,
    container: ContainerDep,
    principal: Reader,
    request_id: RequestIdDep,
    response: Response,
    body: Annotated[VerifyRequest | None, Body()] = None,
    if_match: IfMatchHeader = None,
) -> VerificationPublic:
    """Each goal's KPI over the improvement's scope in its baseline and review periods, and
    over the comparison scope, from the history at the log's head (pinned); any time for a
    progress view. With `record` (in review), it becomes the verification the review and
    the verdict rest on."""
    request = body or VerifyRequest()
    if request.record:
        ensure_role(principal, RECORDERS, "Recording a verification")
    improvement = _improvement(container, improvement_id)
    verification = container.verification()
    scope = request.comparison_scope
    pins = verification.pins(improvement, cast(Scope, scope.model_dump()) if scope else None)
    results = verification.results(improvement, pins)
    number = None
    if request.record:
        command = RecordVerification(results=recorded(results), pinned=pins.stored())
        ctx = _context(principal, request_id, parse_if_match(if_match, "an improvement"))
        improvement = await container.desk.execute_async(improvement_id, command, ctx)
        number = improvement.verification["number"]
    response.headers["ETag"] = f'"{improvement.version}"'
    return VerificationPublic(
        improvement_id=str(improvement_id),
        recorded=request.record,
        verification=number,
        version=improvement.version,
        pinned=pins.stored(),
        control_table=_table(improvement, results),
    )


@router.get(
    "/{improvement_id}/verification",
    operation_id="reproduce_improvement_verification",
    summary="The recorded verification, computed again from its pinned inputs",
)
def reproduce_improvement_verification(
    improvement_id: UUID, container: ContainerDep, _: Reader
) -> ReproductionPublic:
    """Whatever was recorded since, and after any rebuild of the read models: the same
    figures, or `identical: false` and both tables to compare."""
    improvement = _improvement(container, improvement_id)
    if improvement.verification is None:
        raise NotFound(f"improvement {improvement_id} has no recorded verification")
    pinned = improvement.verification["pinned"]
    results = container.verification().results(improvement, Pins.of(pinned))
    again = _table(improvement, results)
    before = [ControlRowPublic.model_validate(r) for r in improvement.verification["control_table"]]
    same = [r.model_dump(exclude={"warnings"}) for r in before] == [
        r.model_dump(exclude={"warnings"}) for r in again
    ]
    return ReproductionPublic(
        improvement_id=str(improvement_id),
        verification=improvement.verification["number"],
        pinned=pinned,
        recorded=before,
        recomputed=again,
        identical=same,
    )


def _improvement(container: Any, improvement_id: UUID) -> Improvement:
    found: Improvement = container.desk.get(improvement_id, practice="improvement")
    return found


def _table(improvement: Improvement, results: list[dict[str, Any]]) -> list[ControlRowPublic]:
    """The domain's control table (target, met) with the figures and their warnings."""
    warnings = {row["goal_id"]: row["warnings"] for row in results}
    rows = control_table(improvement.goals, recorded(results))
    return [
        ControlRowPublic.model_validate({**row, "warnings": warnings[row["goal_id"]]})
        for row in rows
    ]
