"""SLA policies, clocks, breaches, compliance and what-if simulations (docs/sla.md).

Policies are written through the event store (every edit a new, audited version); the
other routes read the clock read model, brought up to now by projections/sla_queries.
"""

# No `from __future__ import annotations`: FastAPI must see the Annotated dependencies.
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Response

from api import query_values
from api.deps import (
    ContainerDep,
    DeskDep,
    ExpectedVersionDep,
    ReadDbDep,
    RequestIdDep,
    require,
)
from api.problem_details import problem_responses
from api.sla.sla_schemas import (
    ApiPolicyCreate,
    ApiPolicyPatch,
    AtRisk,
    Breaches,
    ComplianceReport,
    IncidentClocks,
    PolicyOut,
    PolicyVersion,
    Simulation,
    SimulationRequest,
)
from application.access import Principal, Role
from application.sla.policy_document import to_spec
from application.sla.policy_service import PolicyNotFound, SlaPolicies, VersionRecord
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.value_checks import TIMES_FROM
from domain.sla.sla_policy import SlaPolicy, normalise_spec
from projections.runtime.read_store import ReadStore
from projections.sla import sla_queries

PROBLEMS = problem_responses(400, 401, 403, 404, 409, 413, 422)
# Paths are absolute: the router serves /v1/sla/... and /v1/incidents/{id}/sla.
router = APIRouter(tags=["sla"], responses=PROBLEMS)

Reader = Annotated[Principal, Depends(require(Role.ANALYST, Role.MANAGER, Role.AUDITOR))]
Editor = Annotated[Principal, Depends(require(Role.MANAGER))]
Analyst = Annotated[Principal, Depends(require(Role.ANALYST, Role.MANAGER))]


def _policies(container: ContainerDep) -> SlaPolicies:
    return container.sla_policies


PoliciesDep = Annotated[SlaPolicies, Depends(_policies)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _out(policy: SlaPolicy, versions: list[VersionRecord] | None = None) -> PolicyOut:
    listed = [PolicyVersion(**v) for v in versions] if versions else None
    return _policy_out(str(policy.id), policy.version, policy.spec, listed)


def _policy_out(
    policy_id: str,
    version: int,
    spec: Mapping[str, Any],
    versions: list[PolicyVersion] | None = None,
) -> PolicyOut:
    return PolicyOut(
        id=policy_id,
        version=version,
        name=spec["name"],
        active=spec["active"],
        rank=spec["rank"],
        spec=dict(spec),
        versions=versions,
    )


def _get(policies: SlaPolicies, policy_id: UUID) -> SlaPolicy:
    try:
        return policies.get(policy_id)
    except PolicyNotFound as missing:
        raise HTTPException(404, str(missing)) from None


def _actor(principal: Principal) -> Actor:
    return Actor(principal.name, ActorKind.PERSON)


# -- policies -------------------------------------------------------------------------


_POLICY_LINKS = {
    name: {"operationId": name, "parameters": {"policy_id": "$response.body#/id"}}
    for name in ("get_policy", "patch_policy", "put_policy")
}


@router.post(
    "/v1/sla/policies",
    status_code=201,
    summary="Create an SLA policy",
    responses={201: {"links": _POLICY_LINKS}},
)
def create_policy(
    body: ApiPolicyCreate,
    policies: PoliciesDep,
    principal: Editor,
    request_id: RequestIdDep,
    response: Response,
) -> PolicyOut:
    policy = policies.create(to_spec(body), _actor(principal), request_id)
    response.headers["Location"] = f"/v1/sla/policies/{policy.id}"
    response.headers["ETag"] = f'"{policy.version}"'
    return _out(policy)


@router.get("/v1/sla/policies", summary="List SLA policies (latest version of each)")
def list_policies(db: ReadDbDep, principal: Reader) -> list[PolicyOut]:
    """From the clock read model, which learns policies from the event feed (a moment
    behind a write); GET one policy reads the event store."""
    return [
        _policy_out(policy_id, version, orjson.loads(spec))
        for policy_id, version, spec in _latest_versions(db)
    ]


def _latest_versions(db: ReadStore) -> list[tuple[str, int, str]]:
    """(policy id, version, spec as JSON) of each policy's latest version, oldest first."""
    with db.transaction(read_only=True) as tx:
        rows: list[tuple[str, int, str]] = tx.execute(
            "SELECT v.policy_id, v.version, v.spec FROM sla_policy_versions v WHERE v.version ="
            " (SELECT MAX(w.version) FROM sla_policy_versions w WHERE w.policy_id = v.policy_id)"
            " ORDER BY v.created_at, v.policy_id"
        ).fetchall()
    return rows


@router.get(
    "/v1/sla/policies/{policy_id}",
    operation_id="get_policy",
    summary="One SLA policy with all its versions",
)
def get_policy(
    policy_id: UUID, policies: PoliciesDep, principal: Reader, response: Response
) -> PolicyOut:
    policy = _get(policies, policy_id)
    response.headers["ETag"] = f'"{policy.version}"'
    return _out(policy, policies.versions(policy_id))


def _edit(
    policy_id: UUID,
    spec: dict[str, Any],
    partial: bool,
    policies: SlaPolicies,
    principal: Principal,
    request_id: str,
    expected: int | None,
    response: Response,
) -> PolicyOut:
    current = _get(policies, policy_id)
    if _unchanged(current, spec, partial, expected):
        policy = current  # idempotent: the same specification again is no new version
    else:
        policy = policies.edit(
            policy_id, spec, _actor(principal), request_id, partial, expected_version=expected
        )
    response.headers["ETag"] = f'"{policy.version}"'
    return _out(policy)


def _unchanged(
    policy: SlaPolicy, spec: dict[str, Any], partial: bool, expected: int | None
) -> bool:
    """Whether the edit would leave the specification as it is (at the version the caller
    saw, if it said one)."""
    if expected is not None and expected != policy.version:
        return False
    return normalise_spec({**policy.spec, **spec} if partial else spec) == policy.spec


@router.patch(
    "/v1/sla/policies/{policy_id}",
    operation_id="patch_policy",
    summary="Change some fields: a new version",
)
def patch_policy(
    policy_id: UUID,
    body: ApiPolicyPatch,
    policies: PoliciesDep,
    principal: Editor,
    request_id: RequestIdDep,
    expected: ExpectedVersionDep,
    response: Response,
) -> PolicyOut:
    """Clocks already started keep the version they started with. Changing nothing (the
    values given are the current ones) answers the current version: no new one."""
    return _edit(
        policy_id, to_spec(body), True, policies, principal, request_id, expected, response
    )


@router.put(
    "/v1/sla/policies/{policy_id}",
    operation_id="put_policy",
    summary="Replace the specification: a new version",
)
def put_policy(
    policy_id: UUID,
    body: ApiPolicyCreate,
    policies: PoliciesDep,
    principal: Editor,
    request_id: RequestIdDep,
    expected: ExpectedVersionDep,
    response: Response,
) -> PolicyOut:
    """The same specification again answers the current version: no new one."""
    return _edit(
        policy_id, to_spec(body), False, policies, principal, request_id, expected, response
    )


# -- clocks -------------------------------------------------------------------------------


@router.get(
    "/v1/incidents/{incident_id}/sla",
    operation_id="incident_sla",
    summary="The SLA clocks of an incident, now",
)
def incident_sla(
    incident_id: UUID, db: ReadDbDep, desk: DeskDep, principal: Reader
) -> IncidentClocks:
    now = _now()
    with db.transaction(read_only=True) as tx:
        clocks = sla_queries.ticket_clocks(tx, str(incident_id), now)
        known = clocks or sla_queries.ticket_known(tx, str(incident_id))
    if not known:
        desk.get(incident_id, practice="incident")  # 404 if there is no such incident at all
    document = {"incident_id": str(incident_id), "as_of": now.isoformat(), "clocks": clocks}
    return IncidentClocks.model_validate(document)


def _range(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """[from, to): both aware ISO date-times in the domain's range; to defaults to now,
    from to 30 days before to (not before the range's start)."""
    finish = query_values.moment(end, "to") or _now()
    begin = query_values.moment(start, "from") or max(finish - _DEFAULT_SPAN, TIMES_FROM)
    query_values.ordered(begin, finish)
    return begin, finish


_DEFAULT_SPAN = timedelta(days=30)
_MOMENT = "ISO 8601 date-time with an offset, e.g. 2026-03-01T09:30:00Z"
From = Annotated[
    str | None,
    Query(
        alias="from",
        description=f"{_MOMENT}; default: 30 days before `to`",
        json_schema_extra={"pattern": query_values.MOMENT_PATTERN},
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to",
        description=f"{_MOMENT}; default: now",
        json_schema_extra={"pattern": query_values.MOMENT_PATTERN},
    ),
]


@router.get("/v1/sla/at-risk", summary="Running clocks due within a time span")
def at_risk(
    db: ReadDbDep,
    principal: Reader,
    within: Annotated[
        str,
        Query(
            description='ISO 8601 duration, e.g. "PT1H"; positive, at most 366 days',
            json_schema_extra={"pattern": query_values.DURATION_PATTERN, "format": "duration"},
            max_length=64,
        ),
    ] = "PT1H",
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> AtRisk:
    span, now = query_values.duration(within, "within"), _now()
    with db.transaction(read_only=True) as tx:
        items = sla_queries.at_risk(tx, now, span, limit)
    document = {"as_of": now.isoformat(), "within_seconds": span.total_seconds(), "items": items}
    return AtRisk.model_validate(document)


@router.get("/v1/sla/breaches", summary="Clocks that breached in a period")
def breaches(
    db: ReadDbDep,
    principal: Reader,
    start: From = None,
    end: To = None,
    group: Annotated[str | None, Query(description="assignment group", max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Breaches:
    begin, finish = _range(start, end)
    with db.transaction(read_only=True) as tx:
        items = sla_queries.breaches(tx, begin, finish, _now(), group, limit)
    return Breaches.model_validate(
        {"from": begin.isoformat(), "to": finish.isoformat(), "items": items}
    )


@router.get("/v1/sla/compliance", summary="met / (met + breached) of clocks decided in a period")
def compliance(
    db: ReadDbDep,
    principal: Reader,
    start: From = None,
    end: To = None,
    by: Literal["policy", "priority", "group", "period"] = "policy",
    period: Literal["day", "week", "month"] = "week",
) -> ComplianceReport:
    """Running clocks not yet past due are undecided and left out; a running clock past
    due counts as breached at its due time."""
    begin, finish = _range(start, end)
    with db.transaction(read_only=True) as tx:
        rows = sla_queries.compliance(tx, begin, finish, _now(), by, period)
    return ComplianceReport.model_validate(
        {
            "from": begin.isoformat(),
            "to": finish.isoformat(),
            "by": by,
            "period": period if by == "period" else None,
            "items": rows,
        }
    )


@router.post("/v1/sla/simulations", summary="What-if: replay a period against a draft policy")
def simulate(body: SimulationRequest, container: ContainerDep, principal: Analyst) -> Simulation:
    query_values.ordered(body.start, body.end)
    draft = normalise_spec(to_spec(body.draft))  # a value the domain refuses: 422, at once
    return Simulation(**container.what_if.simulate(draft, body.start, body.end))
