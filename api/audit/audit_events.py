"""The audit trail across every aggregate: who did what, when, caused by what, queried by
auditors a page at a time, or exported whole as CSV or JSON Lines."""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse

from api.audit.audit_schemas import AuditEvent, AuditEventPage
from api.deps import AccessDep, ContainerDep, ReadDbDep, require
from api.kpi.paging import neutralise
from api.problem_details import problem_responses
from api.query_values import MOMENT_PATTERN, invalid, moment, ordered
from application.access import Principal, Role
from projections.audit import audit_trail
from projections.runtime.read_store import ReadStore

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(401, 403, 422))
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR, Role.MANAGER))]
PAGE, MAX_PAGE, EXPORT_PAGE = 200, 1000, 1000
CSV_COLUMNS = (
    "position",
    "occurred_at",
    "recorded_at",
    "aggregate_type",
    "aggregate_id",
    "version",
    "event",
    "actor_id",
    "actor_kind",
    "causation_id",
    "changes",
)
Instant = Annotated[str | None, Query(pattern=MOMENT_PATTERN, max_length=40)]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]
Reveal = Callable[[Any], Any]
MEDIA = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


@router.get(
    "/events",
    operation_id="audit_events",
    summary="Events of every aggregate (JSON pages, or CSV / JSON Lines of all)",
    response_model=AuditEventPage,
    responses={200: {"content": {m: {"schema": {"type": "string"}} for m in MEDIA.values()}}},
)
def audit_events(
    db: ReadDbDep,
    container: ContainerDep,
    principal: Auditor,
    accessed: AccessDep,
    actor: Text = None,
    aggregate_type: Text = None,
    causation_id: Text = None,
    start: Annotated[Instant, Query(alias="from")] = None,
    end: Annotated[Instant, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    answer: Annotated[Literal["json", "csv", "jsonl"] | None, Query(alias="format")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> AuditEventPage | Response:
    """In log order. Filters are exact (`from` and `to`: when it happened, `to` excluded)
    and combine with AND. JSON answers a page: `next` is the `cursor` of the following one.
    `format=csv` or `jsonl` (or that `Accept`) streams every matching event instead."""
    filters = _filters(actor, aggregate_type, causation_id, start, end)
    if actor is not None:  # a person is recorded as their token; a system by its name
        filters["actor"] = (actor, container.vault.person_token(actor))
    chosen = answer or _accepted(accept)
    asked = {**filters, "actor": actor}
    query = orjson.dumps({k: v for k, v in asked.items() if v is not None}, default=str)
    if chosen in MEDIA:
        accessed(principal, "export_audit", "AuditEvents", "", query.decode())
        return _export(db, filters, chosen, container.vault.reveal)
    accessed(principal, "read_audit", "AuditEvents", "", query.decode())
    with db.transaction(read_only=True) as tx:
        rows = audit_trail.search(tx, filters, _decode(cursor), limit)
    following = _encode(rows[-1]["position"]) if len(rows) == limit else None
    return AuditEventPage(limit=limit, next=following, items=[AuditEvent(**r) for r in rows])


def _filters(
    actor: str | None,
    aggregate_type: str | None,
    causation_id: str | None,
    start: str | None,
    end: str | None,
) -> dict[str, Any]:
    since, until = moment(start, "from"), moment(end, "to")
    if since and until:
        ordered(since, until)
    return {
        "actor": actor,
        "aggregate_type": aggregate_type,
        "causation_id": causation_id,
        "start": since,
        "end": until,
    }


def _accepted(accept: str | None) -> str | None:
    for name, media in MEDIA.items():
        if accept and media.split(";")[0] in accept:
            return name
    return None


def _export(db: ReadStore, filters: dict[str, Any], kind: str, reveal: Reveal) -> StreamingResponse:
    """Streamed: each row opened (its personal data in clear, or erased) before encoding."""
    rows = map(reveal, _rows(db, filters))
    lines = _csv_lines(rows) if kind == "csv" else _jsonl_lines(rows)
    headers = {"Content-Disposition": f'attachment; filename="audit-events.{kind}"'}
    return StreamingResponse(lines, media_type=MEDIA[kind], headers=headers)


def _rows(db: ReadStore, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every matching event, a page per read transaction."""
    after = -1
    while True:
        with db.transaction(read_only=True) as tx:
            rows = audit_trail.search(tx, filters, after, EXPORT_PAGE)
        yield from rows
        if len(rows) < EXPORT_PAGE:
            return
        after = rows[-1]["position"]


def _jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps(row) + b"\n"


def _csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    yield _csv_line(CSV_COLUMNS)
    for row in rows:
        yield _csv_line(neutralise(value) for value in _flat(row))


def _flat(row: dict[str, Any]) -> list[Any]:
    return [
        row["position"],
        row["occurred_at"],
        row["recorded_at"],
        row["aggregate_type"],
        row["aggregate_id"],
        row["version"],
        row["event"],
        row["actor"]["id"],
        row["actor"]["kind"],
        row["causation_id"],
        orjson.dumps(row["changes"]).decode(),
    ]


def _csv_line(values: Any) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _encode(position: int) -> str:
    return base64.urlsafe_b64encode(f"a{position}".encode()).decode().rstrip("=")


def _decode(cursor: str | None) -> int:
    """The position a page starts after (-1: the first page)."""
    if cursor is None:
        return -1
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not (text.startswith("a") and text[1:].isdigit() and len(text) < 24):
        raise invalid("cursor", "is not a cursor this API gave (the `next` of a page)")
    return int(text[1:])
