"""The continual improvement register: propose, read and act on improvements.

Writes go through the ServiceDesk (event store); reads are in improvement_reads.py.
"""

# No `from __future__ import annotations`: the action routes annotate their body with a
# model held in a variable, which FastAPI must see as a class, not as a string.
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Response

from api.deps import DeskDep, IfMatchHeader, RequestIdDep, parse_if_match, require
from api.improvement.improvement_schemas import (
    AcceptRequest,
    ApproveRequest,
    CauseAnalysisRequest,
    CloseRequest,
    CompleteActionRequest,
    DeclineRequest,
    DropActionRequest,
    GoalsRevision,
    HoldRequest,
    ImprovementDesign,
    ImprovementSummary,
    NoBody,
    PlanRevision,
    Request,
    WithdrawRequest,
)
from api.problem_details import problem_responses
from application.access import Principal, Role
from domain.improvement.commands import (
    ACTIONS,
    ImprovementCommand,
    ProposeImprovement,
    ReviseDesign,
    ReviseGoals,
    RevisePlan,
)
from domain.improvement.improvement import Improvement
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context

PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422)
router = APIRouter(prefix="/v1/improvements", tags=["improvements"], responses=PROBLEMS)

# Any agent may propose and carry out an improvement; the service management owner (a
# manager) accepts, declines, approves and closes it. Admin may do everything (api/deps.py).
OWNERS = (Role.MANAGER,)
WORKERS = (Role.AGENT, Role.MANAGER)
READERS = (Role.AGENT, Role.MANAGER, Role.ANALYST, Role.AUDITOR)
Proposer = Annotated[Principal, Depends(require(*WORKERS))]
Reader = Annotated[Principal, Depends(require(*READERS))]


def _json(body: Request) -> dict[str, Any]:
    """The body as the domain reads it: JSON values; fields left out take its defaults."""
    return body.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class Route:
    """One route, one command: its path segment, method, body and who may call it."""

    segment: str
    action: str  # the command's `action` (domain/improvement/commands.py, ACTIONS)
    model: type[Request]
    summary: str
    roles: tuple[Role, ...] = WORKERS
    method: str = "POST"
    build: Callable[[dict[str, Any]], ImprovementCommand] | None = None

    @property
    def operation_id(self) -> str:
        name = self.segment.replace("-", "_")
        return f"revise_{name}_improvement" if self.method == "PUT" else f"{name}_improvement"

    def command(self, body: Request) -> ImprovementCommand:
        build = self.build or (lambda fields: ACTIONS[self.action](**fields))
        return build(_json(body))


ROUTES = (
    Route(
        "design",
        "revise_design",
        ImprovementDesign,
        "Replace the design",
        method="PUT",
        build=lambda fields: ReviseDesign(design=fields),
    ),
    Route(
        "goals",
        "revise_goals",
        GoalsRevision,
        "Replace the goals",
        method="PUT",
        build=lambda fields: ReviseGoals(goals=fields["goals"]),
    ),
    Route(
        "plan",
        "revise_plan",
        PlanRevision,
        "Replace the plan: actions and RACI",
        method="PUT",
        build=lambda fields: RevisePlan(plan=fields),
    ),
    Route("accept", "accept", AcceptRequest, "Accept a proposal", OWNERS),
    Route("decline", "decline", DeclineRequest, "Decline a proposal", OWNERS),
    Route("submit", "submit_design", NoBody, "Submit the design for approval"),
    Route("approve", "approve", ApproveRequest, "Approve the plan version reviewed", OWNERS),
    Route("start", "start_implementation", NoBody, "Start the implementation"),
    Route("hold", "hold", HoldRequest, "Put the implementation on hold"),
    Route("resume", "resume", NoBody, "Resume the implementation"),
    Route("complete-action", "complete_action", CompleteActionRequest, "Complete an action"),
    Route("drop-action", "drop_action", DropActionRequest, "Drop an action"),
    Route(
        "complete-implementation",
        "complete_implementation",
        NoBody,
        "Complete the implementation: ready for review",
    ),
    Route(
        "record-cause-analysis",
        "record_cause_analysis",
        CauseAnalysisRequest,
        "Record why a goal was not met, and what follows",
    ),
    Route("close", "close", CloseRequest, "Close with a verdict on the verification", OWNERS),
    Route("withdraw", "withdraw", WithdrawRequest, "Withdraw: it closes as withdrawn"),
)
# Every command of the domain has its route here, but the verification's, whose figures the
# application computes (improvement_verification.py).
NOT_OVER_HTTP = {"record_verification", "remind_review"}  # reminders: a scheduler issues them
assert {r.action for r in ROUTES} == ACTIONS.keys() - NOT_OVER_HTTP


def _context(principal: Principal, request_id: str, expected: int | None = None) -> Context:
    return Context(
        by=Actor(principal.name, ActorKind.PERSON),
        causation_id=request_id,
        expected_version=expected,
    )


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


def _summary(improvement: Improvement) -> ImprovementSummary:
    return ImprovementSummary(
        id=str(improvement.id),
        number=improvement.number,
        state=improvement.state,
        outcome=improvement.outcome,
        plan_version=improvement.plan_version,
        version=improvement.version,
    )


_ID = "$response.body#/id"
FOLLOW_UPS = {
    "get_improvement": "improvement_id",
    "get_improvement_timeline": "improvement_id",
    "aggregate_events": "aggregate_id",
}
FOLLOW_UPS |= {route.operation_id: "improvement_id" for route in ROUTES}
LINKS = {
    name: {"operationId": name, "parameters": {parameter: _ID}}
    for name, parameter in FOLLOW_UPS.items()
}


@router.post(
    "",
    status_code=201,
    operation_id="propose_improvement",
    summary="Propose an improvement",
    responses={201: {"links": LINKS}},
)
def propose_improvement(
    body: ImprovementDesign,
    desk: DeskDep,
    principal: Proposer,
    request_id: RequestIdDep,
    response: Response,
) -> ImprovementSummary:
    """A new entry in the register, numbered `CSI...`; it starts `proposed`."""
    command = ProposeImprovement(design=_json(body))
    improvement = desk.create(command, _context(principal, request_id))
    response.headers["Location"] = f"{router.prefix}/{improvement.id}"
    _etag(response, improvement.version)
    return _summary(improvement)


def _command_endpoint(route: Route) -> Callable[..., Awaitable[ImprovementSummary]]:
    Caller = Annotated[Principal, Depends(require(*route.roles))]

    async def run(
        improvement_id: UUID,
        desk: DeskDep,
        principal: Caller,
        request_id: RequestIdDep,
        response: Response,
        *,
        if_match: IfMatchHeader = None,
        body: Request | None = None,
    ) -> ImprovementSummary:
        expected = parse_if_match(if_match, "an improvement")
        command = route.command(body or route.model())
        ctx = _context(principal, request_id, expected)
        improvement = await desk.execute_async(improvement_id, command, ctx)
        _etag(response, improvement.version)
        return _summary(improvement)

    run.__name__ = route.operation_id
    # FastAPI reads the body's model from the annotations: the route's own, required when
    # one of its fields is, and always for a replacement (PUT).
    run.__annotations__["body"] = Annotated[route.model, Body()]
    fields = route.model.model_fields.values()
    if route.method == "PUT" or any(field.is_required() for field in fields):
        run.__kwdefaults__ = {"if_match": None}  # no default for the body: it is required
    return run


for _route in ROUTES:
    router.add_api_route(
        f"/{{improvement_id}}/{_route.segment}",
        _command_endpoint(_route),
        methods=[_route.method],
        operation_id=_route.operation_id,
        summary=_route.summary,
        response_model=ImprovementSummary,
    )
