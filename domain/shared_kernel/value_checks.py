"""What a value must be before an event may record it.

An event, once stored, is replayed by every read model for ever: a value that one of them
cannot format, store or compute with stops that read model on every retry. So every new
event checks all its values here (`CheckedEvent`), and the entry points refuse the same
values up front with a reason (`InvalidValue`, a 422 over HTTP, a dead letter on Kafka).

- times: timezone-aware, from `TIMES_FROM` up to, not including, `TIMES_BEFORE`. Every
  read model can format, parse and store these, and adding the longest duration to one
  stays far from the end of Python's calendar (year 9999);
- text: no control characters but tab, line feed and carriage return (PostgreSQL refuses
  NUL in text; the others corrupt exports and terminals), no lone surrogates, which no
  UTF-8 encoder writes, and at most `LONGEST_TEXT` characters, so that every event stays
  well under what one Kafka record may carry (1 MiB by default);
- integers: at most `INTEGER_LIMIT` either way, what every JSON consumer holds exactly and
  well inside PostgreSQL's BIGINT;
- other numbers: finite;
- durations: positive and at most `LONGEST_DURATION`.

Events read back from the store are not checked (the mapper does not construct them), so
history recorded before a rule existed still loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import is_dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.shared_kernel.errors import InvalidValue

TIMES_FROM = datetime(1970, 1, 1, tzinfo=UTC)
TIMES_BEFORE = datetime(2200, 1, 1, tzinfo=UTC)
INTEGER_LIMIT = 2**53 - 1
LONGEST_DURATION = timedelta(days=366)
LONGEST_TEXT = 65_536

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

Found = tuple[tuple[Any, ...], str]  # (where in the value, what is wrong)


# -- single values: the reason a value is refused, or None -------------------------------------


def text_problem(text: str) -> str | None:
    if len(text) > LONGEST_TEXT:
        return f"is {len(text)} characters long; text may be at most {LONGEST_TEXT}"
    bad = _CONTROL.search(text)
    if bad is None:
        return None
    kind = "a lone surrogate" if bad.group() >= "\ud800" else "a control character"
    return (
        f"contains {kind} (U+{ord(bad.group()):04X} at position {bad.start()}); "
        "text may hold no control characters but tab and line breaks"
    )


def time_problem(moment: datetime) -> str | None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return f"needs a timezone: {moment.isoformat()}"
    if TIMES_FROM <= moment < TIMES_BEFORE:
        return None
    return (
        f"is out of range: {moment.isoformat()}; times run from "
        f"{TIMES_FROM.date()} up to, not including, {TIMES_BEFORE.date()}"
    )


def integer_problem(number: int) -> str | None:
    if -INTEGER_LIMIT <= number <= INTEGER_LIMIT:
        return None
    return f"is out of range: {number}; integers are at most {INTEGER_LIMIT} either way"


def number_problem(number: float) -> str | None:
    return None if math.isfinite(number) else f"must be a finite number, not {number}"


# -- checks that name the value ----------------------------------------------------------------


def _refuse(name: str, problem: str | None) -> None:
    if problem is not None:
        raise InvalidValue(f"{name} {problem}")


def check_text(name: str, text: str) -> str:
    _refuse(name, text_problem(text))
    return text


def check_time(name: str, moment: datetime) -> datetime:
    _refuse(name, time_problem(moment))
    return moment


def check_integer(name: str, number: int) -> int:
    _refuse(name, integer_problem(number))
    return number


def check_duration(name: str, seconds: int | float) -> int | float:
    """A positive number of seconds, at most LONGEST_DURATION."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 < seconds <= LONGEST_DURATION.total_seconds()
    ):
        raise InvalidValue(
            f"{name} must be a positive number of seconds, at most "
            f"{LONGEST_DURATION.days} days, not {seconds!r}"
        )
    return seconds


def parse_time(text: str, default_tz: tzinfo = UTC, name: str = "time") -> datetime:
    """ISO 8601 text -> a moment the domain accepts; one without an offset is in
    `default_tz`. A date or time that does not exist (30 February, 25:00, an offset of
    +25:00) is refused like one out of range."""
    if not isinstance(text, str):
        raise InvalidValue(f"{name} must be ISO 8601 text, not {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError as error:
        raise InvalidValue(f"{name} {text!r} is not a time that exists: {error}") from None
    return check_time(name, moment if moment.tzinfo else moment.replace(tzinfo=default_tz))


# -- any value an event may hold ---------------------------------------------------------------


def value_problem(value: Any) -> Found | None:
    """Where in `value` (keys and indexes, outermost first) a part is refused, and why."""
    kind = type(value)
    check = _BY_TYPE.get(kind) or _learn(kind)
    return check(value)


def _text(value: str) -> Found | None:
    problem = text_problem(value)
    return None if problem is None else ((), problem)


def _integer(value: int) -> Found | None:
    return None if -INTEGER_LIMIT <= value <= INTEGER_LIMIT else ((), integer_problem(value))


def _number(value: float) -> Found | None:
    return None if math.isfinite(value) else ((), number_problem(value))


def _time(value: datetime) -> Found | None:
    problem = time_problem(value)
    return None if problem is None else ((), problem)


def _fine(value: Any) -> None:
    return None


def _first(items: Any) -> Found | None:
    for key, item in items:
        found = value_problem(item)
        if found is not None:
            return (key, *found[0]), found[1]
    return None


def _mapping(mapping: dict) -> Found | None:
    found = _first(mapping.items())
    if found is not None:
        return found
    for key in mapping:  # keys are recorded too
        if isinstance(key, str) and _CONTROL.search(key) is not None:
            return (key,), f"(a key) {text_problem(key)}"
    return None


def _sequence(items: list | tuple) -> Found | None:
    return _first(enumerate(items))


def _record(value: Any) -> Found | None:
    return _first(vars(value).items())


_BY_TYPE: dict[type, Any] = {
    str: _text,
    int: _integer,
    float: _number,
    datetime: _time,
    bool: _fine,
    type(None): _fine,
    UUID: _fine,
    dict: _mapping,
    list: _sequence,
    tuple: _sequence,
}


def _learn(kind: type) -> Any:
    """The check of a type first met (an enum, Actor, ...), remembered."""
    bases = (
        (str, _text),
        (bool, _fine),
        (int, _integer),
        (float, _number),
        (datetime, _time),
        (dict, _mapping),
        (list, _sequence),
        (tuple, _sequence),
    )
    check = next((c for base, c in bases if issubclass(kind, base)), None)
    if check is None:
        # A dataclass (Actor) is recorded field by field; anything else the store's
        # transcoder accepts or refuses itself.
        check = _record if is_dataclass(kind) and not hasattr(kind, "__slots__") else _fine
    _BY_TYPE[kind] = check
    return check


def _path(where: tuple[Any, ...]) -> str:
    """Keys that are themselves refused text are quoted, so the message stays printable."""
    return ".".join(repr(k) if isinstance(k, str) and text_problem(k) else str(k) for k in where)


def check_fields(values: dict[str, Any]) -> None:
    """InvalidValue naming the first refused value, e.g. 'snapshot.title contains ...'."""
    texts: list[str] = []
    try:
        if _clear(values.values(), texts) and _CONTROL.search("".join(texts)) is None:
            return
    except TypeError:  # a key that is not text: the careful walk decides
        pass
    found = _first(values.items())
    if found is not None:
        raise InvalidValue(f"{_path(found[0])} {found[1]}")


def _clear(values: Any, texts: list[str]) -> bool:
    """The write path's quick look: whether every value but the texts (gathered into
    `texts`, searched at once by the caller) is fine. Not sure -> False, and the careful
    walk (`value_problem`) decides and says where."""
    for value in values:
        kind = type(value)
        if kind is str:
            if len(value) > LONGEST_TEXT:
                return False
            texts.append(value)
        elif kind is int:
            if not -INTEGER_LIMIT <= value <= INTEGER_LIMIT:
                return False
        elif kind is datetime:
            if value.utcoffset() is None or not TIMES_FROM <= value < TIMES_BEFORE:
                return False
        elif value is None or kind is bool or kind is UUID:
            continue
        elif kind is dict:
            texts.extend(value)  # its keys; one that is not text fails the join
            if not _clear(value.values(), texts):
                return False
        elif isinstance(value, str):  # StrEnum members
            texts.append(value)
        elif (_BY_TYPE.get(kind) or _learn(kind)) is _record:  # Actor
            if not _clear(vars(value).values(), texts):
                return False
        elif value_problem(value) is not None:
            return False
    return True


class CheckedEvent:
    """Mixin of every event class: a new event checks its values as it is constructed, so
    a command with a value the domain refuses records nothing. The store reconstructs
    events without calling __post_init__, so stored history is never refused."""

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        check_fields(self.__dict__)


def parse_choice(kind: type[StrEnum], name: str, value: str) -> str:
    """The enum's value as plain text, or InvalidValue naming the allowed ones."""
    try:
        return str(kind(value))
    except ValueError:
        allowed = ", ".join(str(member) for member in kind)
        raise InvalidValue(f"{name} must be one of {allowed}, not {value!r}") from None
