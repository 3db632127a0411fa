"""Reading the continual improvement register: the list, the register export, one
improvement now or as of a past moment, and its audit timeline.

Each route is one query: the list and the register read the register read model, which
follows the event store a moment behind; one improvement now is the aggregate from the
event store; `as_of` folds its stored events as the read model folds them; the timeline is
the audit trail's.
"""

# No `from __future__ import annotations`: FastAPI must see the Annotated dependencies.
import base64
import binascii
import csv
import io
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response

from api.audit.audit_schemas import TimelineEntry
from api.deps import AccessDep, ContainerDep, DeskDep, ReadDbDep, require
from api.improvement.improvement_schemas import (
    ImprovementAsOf,
    ImprovementEntry,
    ImprovementPage,
    ImprovementPublic,
    RegisterEntry,
)
from api.kpi.paging import neutralise
from api.problem_details import problem_responses
from api.query_values import MOMENT_PATTERN, invalid, moment
from application.access import Principal, Role
from application.desk.errors import NotFound
from domain.improvement.improvement import Improvement
from domain.improvement.lifecycle import ImprovementState
from infra.composition_root import Container
from projections.audit import audit_trail
from projections.improvement import improvement_record
from projections.improvement import improvement_register as register_rm

PROBLEMS = problem_responses(401, 403, 404, 422)
router = APIRouter(prefix="/v1/improvements", tags=["improvements"], responses=PROBLEMS)

# Whoever works on, manages, analyses or audits improvements reads them (admin too).
READERS = (Role.AGENT, Role.MANAGER, Role.ANALYST, Role.AUDITOR)
Reader = Annotated[Principal, Depends(require(*READERS))]
AsOf = Annotated[
    str | None,
    Query(
        description="ISO-8601 with offset, e.g. 2026-03-01T09:30:00Z: the improvement "
        "replayed from the event store as it stood then",
        json_schema_extra={"pattern": MOMENT_PATTERN},
    ),
]
Cursor = Annotated[str | None, Query(description="`next` of the previous page", max_length=200)]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="`json` or `csv`; without it, the `Accept` header"),
]
PAGE, MAX_PAGE = 50, 200
REGISTER_COLUMNS = ("number", "name", "state", "owner", "outcome")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


@router.get("", operation_id="list_improvements", summary="Improvements, newest first")
def list_improvements(
    db: ReadDbDep,
    container: ContainerDep,
    _: Reader,
    state: ImprovementState | None = None,
    owner: Annotated[str | None, Query(description="The improvement owner", max_length=200)] = None,
    service: Annotated[
        str | None, Query(description="A service the improvement concerns", max_length=200)
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
    cursor: Cursor = None,
) -> ImprovementPage:
    """From the register read model; filters are exact and combine with AND. `next` is the
    `cursor` of the following page (the same query otherwise), null on the last."""
    filters = {
        "state": state and str(state),
        # An owner is recorded as their person token (older records by name).
        "owner": owner and (owner, container.vault.person_token(owner)),
        "service": service,
    }
    with db.transaction(read_only=True) as tx:
        total, rows, following = register_rm.search(tx, filters, limit, _decode(cursor))
    return ImprovementPage(
        total=total,
        limit=limit,
        next=_encode(following) if following else None,
        items=[ImprovementEntry(**row) for row in rows],
    )


# -- the cursor: where the next page starts, opaque to the client --------------------------------
_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def _encode(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(f"{after[0]}|{after[1]}".encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> tuple[str, str] | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    at, _, number = text.partition("|")
    if not (_AT.match(at) and number and number.isprintable()):
        raise invalid("cursor", "is not a cursor this API gave (the `next` of a page)")
    return at, number


# -- the register --------------------------------------------------------------------------------


@router.get(
    "/register",
    operation_id="improvement_register",
    summary="The register: every improvement (JSON, or CSV)",
    response_model=list[RegisterEntry],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def improvement_register(
    db: ReadDbDep,
    container: ContainerDep,
    _: Reader,
    answer: Format = None,
    accept: Annotated[str | None, Header()] = None,
) -> list[RegisterEntry] | Response:
    """Number, name, state, owner and outcome of every improvement, by number. CSV with
    `format=csv` or `Accept: text/csv` (text cells a spreadsheet would run are quoted)."""
    with db.transaction(read_only=True) as tx:
        rows = register_rm.register(tx)
    if answer == "csv" or (answer is None and accept and "text/csv" in accept):
        return _csv(map(container.vault.reveal, rows))
    return [RegisterEntry(id=row["id"], **{c: row[c] for c in REGISTER_COLUMNS}) for row in rows]


def _csv(rows: Iterable[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REGISTER_COLUMNS)
    writer.writerows([neutralise(row[c]) for c in REGISTER_COLUMNS] for row in rows)
    headers = {"Content-Disposition": 'attachment; filename="improvements.csv"'}
    return Response(out.getvalue(), media_type=CSV_MEDIA_TYPE, headers=headers)


# -- one improvement -----------------------------------------------------------------------------


@router.get(
    "/{improvement_id}",
    operation_id="get_improvement",
    summary="One improvement, now or as of a past moment",
    response_model=ImprovementAsOf | ImprovementPublic,
)
def get_improvement(
    improvement_id: UUID,
    desk: DeskDep,
    container: ContainerDep,
    principal: Reader,
    response: Response,
    accessed: AccessDep,
    as_of: AsOf = None,
) -> ImprovementAsOf | ImprovementPublic:
    """Its design, goals, plan, approval, verification and outcome: now from the event
    store; with `as_of`, folded from its stored events up to then."""
    if as_of is None:
        improvement: ImprovementAsOf | ImprovementPublic = _document(
            desk.get(improvement_id, practice="improvement")
        )
    else:
        improvement = _as_it_was(container, improvement_id, as_of)
    action = "read_detail" if as_of is None else "read_as_of"
    accessed(principal, action, "Improvement", str(improvement_id), as_of or "")
    response.headers["ETag"] = f'"{improvement.version}"'
    return improvement


def _as_it_was(container: Container, improvement_id: UUID, text: str) -> ImprovementAsOf:
    when = moment(text, "as_of")
    assert when is not None  # text is given
    record = _replayed(container, improvement_id, when)
    return ImprovementAsOf(**record, as_of=when.isoformat())


def _replayed(container: Container, improvement_id: UUID, when: datetime) -> dict[str, Any]:
    events = container.published_events(str(improvement_id))
    record = improvement_record.as_of(events, when)
    if not improvement_record.was_proposed(record):
        raise NotFound(f"improvement {improvement_id} did not exist at {when.isoformat()}")
    assert record is not None  # it was proposed
    return record


def _document(improvement: Improvement) -> ImprovementPublic:
    return ImprovementPublic(
        id=str(improvement.id),
        number=improvement.number,
        state=improvement.state,
        outcome=improvement.outcome,
        design=dict(improvement.design),
        goals=[dict(goal) for goal in improvement.goals],
        plan=dict(improvement.plan),
        plan_version=improvement.plan_version,
        approved_version=improvement.approved_version,
        approved_by=improvement.approved_by,
        approved_at=_moment(improvement.approved_at),
        hold_reason=improvement.hold_reason,
        reason=improvement.reason,
        verification=dict(improvement.verification) if improvement.verification else None,
        cause_analyses={goal: dict(a) for goal, a in improvement.cause_analyses.items()},
        summary=improvement.summary,
        proposed_by=improvement.proposed_by,
        proposed_at=improvement.created_on.isoformat(),
        closed_at=_moment(improvement.closed_at),
        updated_at=improvement.modified_on.isoformat(),
        version=improvement.version,
    )


def _moment(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@router.get(
    "/{improvement_id}/timeline",
    operation_id="get_improvement_timeline",
    summary="Audit timeline of one improvement",
)
def get_improvement_timeline(
    improvement_id: UUID, db: ReadDbDep, desk: DeskDep, principal: Reader, accessed: AccessDep
) -> list[TimelineEntry]:
    """Every event: who acted, on behalf of which request, and which fields of the
    improvement it changed (before and after), oldest first."""
    with db.transaction(read_only=True) as tx:
        lines = audit_trail.entries(tx, str(improvement_id), improvement_record.AGGREGATE)
    if not lines:  # 404 if unknown; else the audit trail has not caught up yet
        desk.get(improvement_id, practice="improvement")
    accessed(principal, "read_timeline", "Improvement", str(improvement_id))
    return [TimelineEntry(**{k: line[k] for k in TimelineEntry.model_fields}) for line in lines]
