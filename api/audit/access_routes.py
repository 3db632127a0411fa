"""The access log, for auditors: who read which personal data, when, with which key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.deps import ContainerDep, require
from api.problem_details import problem_responses
from api.query_values import MOMENT_PATTERN, moment, ordered
from application.access import Principal, Role

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(401, 403, 422))
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR))]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Instant = Annotated[str | None, Query(pattern=MOMENT_PATTERN, max_length=40)]
PAGE, MAX_PAGE = 200, 1000


class AccessEntry(BaseModel):
    id: int
    at: str
    key_name: str = Field(description="The API key's name: the person or system reading")
    role: str
    action: str = Field(description="read_detail, read_as_of, read_timeline, read_audit, ...")
    resource_type: str
    resource_id: str = Field(description="Empty for a query over many; see detail")
    request_id: str
    detail: str


class AccessPage(BaseModel):
    limit: int
    next: int | None = Field(description="The `after` of the next page; null on the last")
    items: list[AccessEntry]


@router.get("/access", operation_id="access_log", summary="Who read which personal data")
def access_log(
    container: ContainerDep,
    _: Auditor,
    key_name: Text = None,
    resource_id: Text = None,
    resource_type: Text = None,
    start: Annotated[Instant, Query(alias="from")] = None,
    end: Annotated[Instant, Query(alias="to")] = None,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> AccessPage:
    """Oldest first; filters are exact (`from` and `to` on when it was read, `to`
    excluded) and combine with AND. Auditors only."""
    since, until = moment(start, "from"), moment(end, "to")
    if since and until:
        ordered(since, until)
    filters = {
        "key_name": key_name,
        "resource_id": resource_id,
        "resource_type": resource_type,
        "start": since,
        "end": until,
    }
    rows = container.access_log.search(filters, after, limit)
    following = rows[-1]["id"] if len(rows) == limit else None
    return AccessPage(limit=limit, next=following, items=[AccessEntry(**r) for r in rows])
