"""API keys as a managed resource: admin only (docs/access.md).

Each route is one use case of application/access.py's `ApiKeyService`, which writes the
key's events through the desk (so they are in the audit trail, with the admin as the actor
and the request id as the causation id) and its secret's hash to the lookup table.
"""

# No `from __future__ import annotations`: FastAPI must see the Annotated dependencies.
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from api.access.key_schemas import KeyCreate, KeyExpiry, KeyPublic, KeyRevoke, KeySecret
from api.deps import ContainerDep, RequestIdDep, require
from api.problem_details import ProblemResponse, problem, problem_responses
from application.access import (
    ApiKeyService,
    KeyNameTaken,
    Principal,
    Role,
    parse_expiry,
)
from domain.shared_kernel.actor import Actor, ActorKind
from domain.shared_kernel.command_context import Context

PROBLEMS = problem_responses(401, 403, 404, 409, 422)
router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=PROBLEMS)

Admin = Annotated[Principal, Depends(require(Role.ADMIN))]


def _keys(container: ContainerDep) -> ApiKeyService:
    return container.keys


KeysDep = Annotated[ApiKeyService, Depends(_keys)]


def _context(principal: Principal, request_id: str) -> Context:
    return Context(Actor(principal.name, ActorKind.PERSON), causation_id=request_id)


def _located(key: KeyPublic, response: Response) -> None:
    response.headers["Location"] = f"/v1/keys/{key.id}"
    response.headers["ETag"] = f'"{key.version}"'


@router.get("", summary="List API keys (revoked ones too; never their secrets)")
def list_keys(keys: KeysDep, principal: Admin) -> list[KeyPublic]:
    return [KeyPublic.of(key) for key in keys.list()]


@router.post("", status_code=201, summary="Issue an API key; its secret is shown only here")
def create_key(
    body: KeyCreate, keys: KeysDep, principal: Admin, request_id: RequestIdDep, response: Response
) -> KeySecret:
    issued = keys.issue(
        body.name, body.role, _context(principal, request_id), parse_expiry(body.expires)
    )
    created = KeySecret(**KeyPublic.of(issued.key).model_dump(), secret=issued.secret)
    _located(created, response)
    response.headers["Cache-Control"] = "no-store"
    return created


@router.get("/{key_id}", summary="One API key")
def get_key(key_id: UUID, keys: KeysDep, principal: Admin, response: Response) -> KeyPublic:
    key = KeyPublic.of(keys.get(key_id))
    response.headers["ETag"] = f'"{key.version}"'
    return key


@router.post("/{key_id}/revoke", summary="Revoke an API key: every instance refuses it within 2 s")
def revoke_key(
    key_id: UUID,
    keys: KeysDep,
    principal: Admin,
    request_id: RequestIdDep,
    response: Response,
    body: KeyRevoke | None = None,
) -> KeyPublic:
    reason = body.reason if body else ""
    key = KeyPublic.of(keys.revoke(key_id, _context(principal, request_id), reason=reason))
    response.headers["ETag"] = f'"{key.version}"'
    return key


@router.post(
    "/{key_id}/rotate",
    summary="A new secret for an API key (same name and role); the old one stops working",
)
def rotate_key(
    key_id: UUID, keys: KeysDep, principal: Admin, request_id: RequestIdDep, response: Response
) -> KeySecret:
    issued = keys.rotate(key_id, _context(principal, request_id))
    rotated = KeySecret(**KeyPublic.of(issued.key).model_dump(), secret=issued.secret)
    response.headers["ETag"] = f'"{rotated.version}"'
    response.headers["Cache-Control"] = "no-store"
    return rotated


@router.post("/{key_id}/expiry", summary="Set or clear an API key's expiry")
def set_key_expiry(
    key_id: UUID,
    body: KeyExpiry,
    keys: KeysDep,
    principal: Admin,
    request_id: RequestIdDep,
    response: Response,
) -> KeyPublic:
    expires_at = parse_expiry(body.expires)
    key = KeyPublic.of(keys.set_expiry(key_id, expires_at, _context(principal, request_id)))
    response.headers["ETag"] = f'"{key.version}"'
    return key


# -- problems ----------------------------------------------------------------------------


async def _name_taken(request: Request, exc: Exception) -> ProblemResponse:
    return problem(request, 409, str(exc), kind="key-name-taken", title="Key name taken")


def install(app: FastAPI) -> None:
    """A name held by a live key: a 409 of its own type (without this handler, the
    IllegalTransition 409 it also is)."""
    app.add_exception_handler(KeyNameTaken, _name_taken)
