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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import is_dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Protocol, cast
from uuid import UUID

from domain.shared_kernel.errors import InvalidValue

TIMES_FROM = datetime(1970, 1, 1, tzinfo=UTC)
TIMES_BEFORE = datetime(2200, 1, 1, tzinfo=UTC)
INTEGER_LIMIT = 2**53 - 1
LONGEST_DURATION = timedelta(days=366)
LONGEST_TEXT = 65_536

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

Where = tuple[object, ...]  # the keys and indexes down to a part of a value, outermost first
Found = tuple[Where, str]  # (where in the value, what is wrong)
Check = Callable[[Any], Found | None]


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


def check_duration(name: str, seconds: object) -> int | float:
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


def value_problem(value: object) -> Found | None:
    """Where in `value` (keys and indexes, outermost first) a part is refused, and why."""
    return _check_of(type(value))(value)


def _found(problem: str | None) -> Found | None:
    return None if problem is None else ((), problem)


def _text(value: str) -> Found | None:
    return _found(text_problem(value))


def _integer(value: int) -> Found | None:
    return _found(integer_problem(value))


def _number(value: float) -> Found | None:
    return _found(number_problem(value))


def _time(value: datetime) -> Found | None:
    return _found(time_problem(value))


def _fine(value: object) -> None:
    return None


def _first(items: Iterable[tuple[object, object]]) -> Found | None:
    for key, item in items:
        found = value_problem(item)
        if found is not None:
            return (key, *found[0]), found[1]
    return None


def _mapping(mapping: Mapping[object, object]) -> Found | None:
    found = _first(mapping.items())
    if found is not None:
        return found
    for key in mapping:  # keys are recorded too
        if isinstance(key, str) and _CONTROL.search(key) is not None:
            return (key,), f"(a key) {text_problem(key)}"
    return None


def _sequence(items: Sequence[object]) -> Found | None:
    return _first(enumerate(items))


def _record(value: object) -> Found | None:
    return _first(vars(value).items())


# The check of each type met so far. A check takes a value of its own type only, which a
# type-indexed table cannot say: its parameter is Any.
_BY_TYPE: dict[type, Check] = {
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
# The check of a subclass of these, in the order they are tried (bool before int).
_BY_BASE: tuple[tuple[type, Check], ...] = (
    (str, _text),
    (bool, _fine),
    (int, _integer),
    (float, _number),
    (datetime, _time),
    (dict, _mapping),
    (list, _sequence),
    (tuple, _sequence),
)


def _check_of(kind: type) -> Check:
    return _BY_TYPE.get(kind) or _learn(kind)


def _learn(kind: type) -> Check:
    """The check of a type first met (an enum, Actor, ...), remembered."""
    check = next((c for base, c in _BY_BASE if issubclass(kind, base)), None)
    if check is None:
        # A dataclass (Actor) is recorded field by field; anything else the store's
        # transcoder accepts or refuses itself.
        check = _record if is_dataclass(kind) and not hasattr(kind, "__slots__") else _fine
    _BY_TYPE[kind] = check
    return check


def _path(where: Where) -> str:
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


def _clear(values: Iterable[object], texts: list[str]) -> bool:
    """The write path's quick look: whether every value but the texts (gathered into
    `texts`, searched at once by the caller) is fine. Not sure -> False, and the careful
    walk (`value_problem`) decides and says where. Text, integers and None, most of any
    event, are looked at here without a further call."""
    for value in values:
        if type(value) is str:
            if len(value) > LONGEST_TEXT:
                return False
            texts.append(value)
        elif type(value) is int:
            if not -INTEGER_LIMIT <= value <= INTEGER_LIMIT:
                return False
        elif value is not None and not _clear_other(value, texts):
            return False
    return True


def _clear_other(value: object, texts: list[str]) -> bool:
    """`_clear` of one value that is neither plain text, a plain integer nor None."""
    if type(value) is bool or type(value) is UUID:
        return True
    if type(value) is datetime:
        return value.utcoffset() is not None and TIMES_FROM <= value < TIMES_BEFORE
    if type(value) is dict:
        texts.extend(value)  # its keys; one that is not text fails the join
        return _clear(value.values(), texts)
    if isinstance(value, str):  # StrEnum members
        texts.append(value)
        return True
    if _check_of(type(value)) is _record:  # Actor
        return _clear(vars(value).values(), texts)
    return value_problem(value) is None


class _PostInit(Protocol):
    """The event class CheckedEvent is mixed into (a dataclass of eventsourcing's)."""

    def __post_init__(self) -> None: ...


class CheckedEvent:
    """Mixin of every event class: a new event checks its values as it is constructed, so
    a command with a value the domain refuses records nothing. The store reconstructs
    events without calling __post_init__, so stored history is never refused."""

    def __post_init__(self) -> None:
        cast(_PostInit, super()).__post_init__()
        check_fields(self.__dict__)


def parse_choice(kind: type[StrEnum], name: str, value: str) -> str:
    """The enum's value as plain text, or InvalidValue naming the allowed ones."""
    try:
        return str(kind(value))
    except ValueError:
        allowed = ", ".join(str(member) for member in kind)
        raise InvalidValue(f"{name} must be one of {allowed}, not {value!r}") from None
