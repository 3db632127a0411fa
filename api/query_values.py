"""Query parameters as the domain bounds them: a value out of range is a 422 (docs/http.md).

Times are ISO 8601 text only (a number is not a Unix time here), within the domain's range
(`TIMES_FROM` up to, not including, `TIMES_BEFORE`); durations are ISO 8601, positive and at
most `LONGEST_DURATION`; offsets are at most `INTEGER_LIMIT`.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated

from fastapi import Query
from fastapi.exceptions import RequestValidationError

from application.sla.policy_document import parse_duration
from domain.shared_kernel.value_checks import (
    INTEGER_LIMIT,
    LONGEST_DURATION,
    TIMES_BEFORE,
    TIMES_FROM,
    time_problem,
)

DURATION_PATTERN = r"^P([0-9]+(\.[0-9]+)?[YMWD])*(T([0-9]+(\.[0-9]+)?[HMS])+)?$"
MOMENT_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ].+)?$"
_RANGE = f"times run from {TIMES_FROM.date()} up to, not including, {TIMES_BEFORE.date()}"

Offset = Annotated[int, Query(ge=0, le=INTEGER_LIMIT, description="Items to skip")]


def invalid(field: str, message: str) -> RequestValidationError:
    """A 422 naming the query parameter, as FastAPI's own validation does."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message}]
    )


def moment(text: str | None, field: str, zone: tzinfo | None = None) -> datetime | None:
    """ISO date-time text within the domain's range; without an offset, in `zone` (or a
    422 when there is none)."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise invalid(field, f"{text!r} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        if zone is None:
            raise invalid(field, "needs a timezone: add an offset such as Z or +02:00")
        parsed = parsed.replace(tzinfo=zone)
    return in_range(parsed, field)


def day_or_moment(text: str | None, field: str, zone: tzinfo, end: bool) -> datetime | None:
    """An ISO date (a whole day: its start, or with `end` its end) or date-time in `zone`."""
    if text is None or len(text) != 10:
        return moment(text, field, zone)
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise invalid(field, f"{text!r} is not an ISO date (2016-03-01) or date-time") from None
    if not TIMES_FROM.date() <= day < TIMES_BEFORE.date():
        raise invalid(field, f"{text} is out of range; {_RANGE}")
    return datetime.combine(day + timedelta(days=1) if end else day, time(), zone)


def in_range(value: datetime, field: str) -> datetime:
    problem = time_problem(value)
    if problem is not None:
        raise invalid(field, problem)
    return value


def ordered(start: datetime, end: datetime, first: str = "from", last: str = "to") -> None:
    if end <= start:
        raise invalid(last, f"must be after {first}")


def duration(text: str, field: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise invalid(
            field,
            f'must be a positive ISO 8601 duration such as "PT1H", '
            f"at most {LONGEST_DURATION.days} days, not {text!r}",
        ) from None
