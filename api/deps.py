"""Dependencies shared by the routers: the container, the caller and their role."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Header, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from application.access import Access, Principal, Role
from application.desk.service_desk import ServiceDesk
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context
from infra.composition_root import Container
from projections.runtime.read_store import ReadStore

# Trivial dependencies are async: a plain `def` would cost a threadpool hop each, per request.
# auto_error=False: we answer 401 ourselves, as a problem with WWW-Authenticate.
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer itsm_...`")
_IF_MATCH = re.compile(r'^(?:W/)?"?(\d+)"?$')


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_desk(container: ContainerDep) -> ServiceDesk:
    return container.desk


async def get_read_db(container: ContainerDep) -> ReadStore:
    return container.read_db


DeskDep = Annotated[ServiceDesk, Depends(get_desk)]
ReadDbDep = Annotated[ReadStore, Depends(get_read_db)]


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    # The edge (api/edge.py) has already looked the key up; without it, look it up here.
    container: Container = request.app.state.container
    known: Principal | None = getattr(request.state, "principal", None)
    principal = known or (
        await _holder(container, credentials.credentials) if credentials else None
    )
    if principal is None:
        secret = credentials.credentials if credentials else None
        refusal = await run_in_threadpool(container.keys.refusal, secret)
        detail = refusal.detail if refusal else "The API key is unknown."
        raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
    return principal


async def _holder(container: Container, key: str) -> Principal | None:
    """A known key is in memory; only a lookup goes to a worker thread."""
    return container.keys.cached(key) or await run_in_threadpool(container.keys.authenticate, key)


def ensure_role(principal: Principal, roles: tuple[Role, ...], what: str = "This route") -> None:
    # Admin may do everything, so it is implied rather than listed on every route.
    allowed = sorted({str(Role.ADMIN), *map(str, roles)})
    if principal.role not in allowed:
        raise HTTPException(
            403,
            f"{what} needs one of the roles {', '.join(allowed)}; "
            f"the key of {principal.name} has the role {principal.role}.",
        )


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through callers holding one of `roles` (or admin)."""

    # Flat on purpose: FastAPI pays for every level of sub-dependency on every request.
    async def dependency(request: Request, credentials: BearerDep) -> Principal:
        principal = await _authenticate(request, credentials)
        ensure_role(principal, roles)
        return principal

    return dependency


async def request_id(request: Request) -> str:
    """Set by the middleware from X-Request-ID (or generated); it becomes the causation id."""
    given: str = request.state.request_id
    return given


RequestIdDep = Annotated[str, Depends(request_id)]


IF_MATCH_DESCRIPTION = (
    'The version you last saw, as its ETag: `"3"` (also `3` or `W/"3"`; `*` = any version).'
    " A stale version is a 409 and nothing is written; one that is not an entity tag, a 400."
)
IF_MATCH_PATTERN = r'^\s*(\*|(W/)?"?[0-9]{1,15}"?)\s*$'
IfMatchHeader = Annotated[
    str | None,
    Header(
        description=IF_MATCH_DESCRIPTION,
        examples=['"3"'],
        json_schema_extra={"pattern": IF_MATCH_PATTERN},
    ),
]


def parse_if_match(if_match: str | None, what: str = "an incident") -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    match = _IF_MATCH.match(if_match.strip())
    if match is None or len(match.group(1)) > 15:
        raise HTTPException(
            400, f'If-Match must be the version of {what}, such as "3", not {if_match!r}.'
        )
    return int(match.group(1))


async def policy_version(if_match: IfMatchHeader = None) -> int | None:
    return parse_if_match(if_match, "an SLA policy")


ExpectedVersionDep = Annotated[int | None, Depends(policy_version)]


@dataclass(frozen=True)
class CommandCall:
    """What a command route needs: the desk, and who acts, why, on which version."""

    desk: ServiceDesk
    context: Context


def command_by(*roles: Role) -> Callable[..., Awaitable[CommandCall]]:
    """One flat dependency for the hot path of commands: key, role, request id, If-Match."""

    async def dependency(
        request: Request, credentials: BearerDep, if_match: IfMatchHeader = None
    ) -> CommandCall:
        principal = await _authenticate(request, credentials)
        ensure_role(principal, roles)
        desk = request.app.state.container.desk
        return CommandCall(desk, _context(request, principal, if_match))

    return dependency


def _context(request: Request, principal: Principal, if_match: str | None) -> Context:
    """The key's holder acts, because of this request, on the version it saw."""
    return Context(
        by=Actor(principal.name, ActorKind.PERSON),
        causation_id=request.state.request_id,
        expected_version=parse_if_match(if_match),
    )


class AccessRecorder(Protocol):
    def __call__(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str,
        detail: str = "",
    ) -> None: ...


def access_recorder(request: Request, container: ContainerDep) -> AccessRecorder:
    """Records a read of personal data in the access log (docs/access.md): a route calls
    it with its caller, the action, the resource's type and id, and a detail (the query),
    once its answer is known."""

    def record(
        principal: Principal, action: str, resource_type: str, resource_id: str, detail: str = ""
    ) -> None:
        access = Access(
            principal.name,
            str(principal.role),
            action,
            resource_type,
            resource_id,
            request.state.request_id,
            detail,
        )
        container.access_log.record(access)

    return record


AccessDep = Annotated[AccessRecorder, Depends(access_recorder)]
