"""Incident management: log, queue, inspect, act on and audit incidents.

Writes go through the ServiceDesk (event store); reads come from the read models, which
follow the event store a moment behind (see `get_incident`).
"""

# No `from __future__ import annotations`: the per-action routes annotate their body with a
# model held in a variable, which FastAPI must see as a class, not as a string.
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Response

from api.audit.audit_schemas import TimelineEntry
from api.deps import (
    AccessDep,
    CommandCall,
    ContainerDep,
    DeskDep,
    ReadDbDep,
    RequestIdDep,
    command_by,
    ensure_role,
    require,
)
from api.incident.incident_schemas import (
    ACTION_REQUESTS,
    CommandResult,
    IncidentAsOf,
    IncidentCreate,
    IncidentCreated,
    IncidentPage,
    IncidentPublic,
    Request,
)
from api.problem_details import problem_responses
from api.query_values import MOMENT_PATTERN, Offset, moment
from application.access import Principal, Role
from application.desk.errors import NotFound
from domain.incident.commands import ACTIONS, LogIncident
from domain.incident.incident import Incident
from domain.incident.lifecycle import IncidentState
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from infra.composition_root import Container
from projections.audit import incident_timeline as timeline_rm
from projections.incident import incident_queue as incidents_rm
from projections.incident import incident_record
from projections.runtime.read_store import ReadStore

PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422)
router = APIRouter(prefix="/v1/incidents", tags=["incidents"], responses=PROBLEMS)

Operator = Annotated[Principal, Depends(require(Role.AGENT, Role.MANAGER))]
QueueReader = Annotated[Principal, Depends(require(Role.ANALYST, Role.MANAGER, Role.AGENT))]
Reader = Annotated[
    Principal, Depends(require(Role.ANALYST, Role.MANAGER, Role.AGENT, Role.AUDITOR))
]
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR, Role.MANAGER))]
OperatorCommand = Annotated[CommandCall, Depends(command_by(Role.AGENT, Role.MANAGER))]
AsOf = Annotated[
    str | None,
    Query(
        description="ISO-8601 with offset, e.g. 2025-03-01T09:30:00Z "
        "(auditors): the incident replayed from the event store "
        "as it stood then",
        json_schema_extra={"pattern": MOMENT_PATTERN},
    ),
]

SUMMARIES = {
    "assign": "Assign to a group (and agent)",
    "acknowledge": "Acknowledge: work starts",
    "escalate": "Escalate functionally (next tier) or hierarchically (major incident)",
    "hold": "Put on hold",
    "resume": "Resume from hold",
    "resolve": "Resolve with a code",
    "reopen": "Reopen a resolved incident",
    "close": "Close, with caller satisfaction",
    "cancel": "Cancel (logged in error, duplicate...)",
    "comment": "Add a work note or comment",
    "reprioritise": "Change impact and urgency",
    "recategorise": "Change the categorisation",
}


def _context(principal: Principal, request_id: str, expected: int | None = None) -> Context:
    return Context(
        by=Actor(principal.name, ActorKind.PERSON),
        causation_id=request_id,
        expected_version=expected,
    )


def _etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


def _replayed(
    container: Container, incident_id: UUID, moment: datetime | None = None
) -> dict[str, Any]:
    """The incident's record folded from its stored events (up to `moment`), as the
    incidents read model folds the feed: the same document, whichever answers."""
    events = container.published_events(str(incident_id))
    record = incident_record.as_of(events, moment) if moment else incident_record.replay(events)
    if record is None or not incident_record.was_logged(record):
        raise NotFound(
            f"incident {incident_id} did not exist at {moment.isoformat()}"
            if moment
            else f"no incident with id {incident_id}"
        )
    return record


def _links(*operations: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI links from a logged incident to what may follow (stateful clients, fuzzers)."""
    links = {
        name: {"operationId": name, "parameters": {_ID_PARAMETER.get(name, "incident_id"): _ID}}
        for name in operations
    }
    return {201: {"links": links}}


_ID, _ID_PARAMETER = "$response.body#/id", {"aggregate_events": "aggregate_id"}


FOLLOW_UPS = ("get_incident", "get_timeline", "incident_sla", "aggregate_events")


@router.post(
    "",
    status_code=201,
    summary="Log an incident",
    responses=_links(*FOLLOW_UPS, *(f"{action}_incident" for action in ACTION_REQUESTS)),
)
def log_incident(
    body: IncidentCreate,
    desk: DeskDep,
    principal: Operator,
    request_id: RequestIdDep,
    response: Response,
) -> IncidentCreated:
    """Priority is derived from impact x urgency by the priority matrix."""
    command = LogIncident(**body.model_dump(mode="json"))
    incident = desk.create(command, _context(principal, request_id))
    response.headers["Location"] = f"{router.prefix}/{incident.id}"
    _etag(response, incident.version)
    return IncidentCreated(**_summary(incident))


def _summary(incident: Incident) -> dict[str, Any]:
    """What a command answers: the incident's identity, state, priority and version."""
    return {
        "id": str(incident.id),
        "number": incident.number,
        "state": incident.state,
        "priority": incident.priority,
        "version": incident.version,
    }


@router.get("", summary="Incident queue")
def list_incidents(
    db: ReadDbDep,
    container: ContainerDep,
    _: QueueReader,
    state: IncidentState | None = None,
    priority: Annotated[str | None, Query(pattern=r"^P[1-4]$")] = None,
    group: Annotated[str | None, Query(description="Assignment group", max_length=200)] = None,
    assignee: Annotated[str | None, Query(max_length=200)] = None,
    number: Annotated[str | None, Query(max_length=200)] = None,
    external_ref: Annotated[
        str | None,
        Query(description="The ticket's number in the system it came from", max_length=200),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> IncidentPage:
    """Newest first, from the incidents read model."""
    filters = {
        "state": state and str(state),
        "priority": priority,
        "assignment_group": group,
        # An agent is recorded as their token (older records by name).
        "assignee": assignee and (assignee, container.vault.person_token(assignee)),
        "number": number,
        "external_ref": external_ref,
    }
    with db.transaction(read_only=True) as tx:
        total, rows = incidents_rm.search(tx, filters, limit, offset)
    return IncidentPage(
        total=total, limit=limit, offset=offset, items=[IncidentPublic(**row) for row in rows]
    )


@router.get(
    "/{incident_id}",
    operation_id="get_incident",
    summary="One incident, now or as of a past moment",
    response_model=IncidentAsOf | IncidentPublic,
)
def get_incident(
    incident_id: UUID,
    db: ReadDbDep,
    container: ContainerDep,
    principal: Reader,
    response: Response,
    accessed: AccessDep,
    as_of: AsOf = None,
) -> IncidentAsOf | IncidentPublic:
    """Current state from the read model.

    The read model follows the event store asynchronously, so an incident logged a moment
    ago may not have a row yet: then its stored events are folded as the read model folds
    them, instead of answering 404. Only an incident the event store does not know is a 404.
    """
    if as_of is None:
        incident = _current(db, container, incident_id)
    else:
        incident = _as_it_was(container, principal, incident_id, as_of)
    action = "read_detail" if as_of is None else "read_as_of"
    accessed(principal, action, "Incident", str(incident_id), as_of or "")
    _etag(response, incident.version)
    return incident


def _current(db: ReadStore, container: Container, incident_id: UUID) -> IncidentPublic:
    with db.transaction(read_only=True) as tx:
        row = incidents_rm.get(tx, str(incident_id))
    return IncidentPublic(**(row or _replayed(container, incident_id)))


def _as_it_was(
    container: Container, principal: Principal, incident_id: UUID, text: str
) -> IncidentAsOf:
    ensure_role(principal, (Role.AUDITOR,), "Reading an incident as of a past moment")
    as_of = moment(text, "as_of")
    assert as_of is not None  # text is given
    record = _replayed(container, incident_id, as_of)
    return IncidentAsOf(**record, as_of=as_of.isoformat())


@router.get("/{incident_id}/timeline", operation_id="get_timeline", summary="Audit timeline")
def get_timeline(
    incident_id: UUID, db: ReadDbDep, desk: DeskDep, principal: Auditor, accessed: AccessDep
) -> list[TimelineEntry]:
    """Every event: who acted, on behalf of which request, and what changed."""
    with db.transaction(read_only=True) as tx:
        entries = timeline_rm.entries(tx, str(incident_id))
    if not entries:  # 404 if unknown; else the timeline has not caught up
        desk.get(incident_id, practice="incident")
    accessed(principal, "read_timeline", "Incident", str(incident_id))
    return [TimelineEntry(**entry) for entry in entries]


def _command_route(action: str, model: type[Request]) -> None:
    router.add_api_route(
        f"/{{incident_id}}/{action}",
        _command_endpoint(action, model),
        methods=["POST"],
        operation_id=f"{action}_incident",
        summary=SUMMARIES[action],
        response_model=CommandResult,
    )


def _command_endpoint(action: str, model: type[Request]) -> Callable[..., Awaitable[CommandResult]]:
    async def run(
        incident_id: UUID, call: OperatorCommand, response: Response, body: Request | None = None
    ) -> CommandResult:
        command = ACTIONS[action](**(body or model()).model_dump(mode="json"))
        incident = await call.desk.execute_async(incident_id, command, call.context)
        _etag(response, incident.version)
        return CommandResult(**_summary(incident))

    run.__name__ = f"{action}_incident"
    _take_body(run, model)
    return run


def _take_body(endpoint: Callable[..., Any], model: type[Request]) -> None:
    """FastAPI reads the body's model from the endpoint's annotations: there it is the
    action's own, required when one of its fields is."""
    endpoint.__annotations__["body"] = Annotated[model, Body()]
    if any(field.is_required() for field in model.model_fields.values()):
        endpoint.__defaults__ = None  # no default: FastAPI requires the body


for _action, _model in ACTION_REQUESTS.items():
    _command_route(_action, _model)


@router.post("/{incident_id}/{action}", include_in_schema=False)
def unknown_action(incident_id: UUID, action: str, _: Operator) -> None:
    raise HTTPException(
        404, f"There is no action {action!r}; the actions are {', '.join(ACTION_REQUESTS)}."
    )
