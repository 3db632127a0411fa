"""Import a ServiceNow incident audit export as `incident.snapshot` CloudEvents on Kafka.

One CSV row (the state of one incident right after one update) becomes one CloudEvent on
the inbound topic, keyed by the ticket number so that one ticket stays in one partition and
its snapshots reach the inbound consumer in the order they are sent. The importer maps values
and orders each ticket's rows; the inbound mapper decides what changed (see docs/inbound.md
and docs/kpis.md).

Mapping decisions (also in docs/kpis.md):

* `incident_state`: New -> new; Active -> in_progress; Awaiting User Info / Vendor / Problem /
  Evidence -> on_hold with hold_reason awaiting_caller / _vendor / _problem / _evidence;
  Resolved -> resolved; Closed -> closed; Cancelled / Canceled -> cancelled.
* `-100` (and any other unknown state) is not a ServiceNow state but an export artefact (in
  the UCI 498 log: two rows of INC0028089 between New and Resolved, all other fields
  unchanged). Such rows are skipped and counted (`ImportStats.skipped`), never guessed.
* `?` -> null; `2 - Medium` -> 2; `3 - Moderate` -> "P3"; `Phone` -> channel "phone".
* Dates are day-first `D/M/YYYY HH:MM` without timezone -> ISO `YYYY-MM-DDTHH:MM:00`
  without offset (the consumer's `inbound_source_timezone` applies), or with the offset of
  `source_timezone` when one is given (DST-aware via zoneinfo).
* `cmdb_ci` -> service, `u_symptom` -> title, `closed_code` -> resolution_code,
  `caller_id` -> caller, `assigned_to` -> assignee.
* Each ticket's rows are sent by `sys_mod_count`; among equal counts the latest
  `sys_updated_at` first, and rows equal in both in file order. The consumer applies a
  ticket's snapshots in arrival order and ignores one whose mod_count is not above the last
  applied one, so this order makes the latest record of each count win (docs/inbound.md).
  The file is read twice: once for the order, once to send; only rows that come before
  their turn are held in memory, and tickets stay interleaved as in the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import orjson

DEFAULT_SOURCE = "servicenow://uci-498"
DEFAULT_TOPIC = "itsm.inbound"
SNAPSHOT_TYPE = "incident.snapshot"

STATES: dict[str, tuple[str, str | None]] = {
    "New": ("new", None),
    "Active": ("in_progress", None),
    "In Progress": ("in_progress", None),
    "Awaiting User Info": ("on_hold", "awaiting_caller"),
    "Awaiting Caller": ("on_hold", "awaiting_caller"),
    "Awaiting Vendor": ("on_hold", "awaiting_vendor"),
    "Awaiting Problem": ("on_hold", "awaiting_problem"),
    "Awaiting Change": ("on_hold", "awaiting_change"),
    "Awaiting Evidence": ("on_hold", "awaiting_evidence"),
    "Resolved": ("resolved", None),
    "Closed": ("closed", None),
    "Cancelled": ("cancelled", None),
    "Canceled": ("cancelled", None),
}
CHANNELS = {
    "Phone": "phone",
    "Email": "email",
    "Self service": "portal",
    "Self-service": "portal",
    "Web": "portal",
    "Monitoring": "monitoring",
    "Event": "monitoring",
}
BOOLEANS = {"true": True, "false": False}
REQUIRED_COLUMNS = ("number", "incident_state", "sys_mod_count", "sys_updated_at")
# The snapshot's fields after its identity and state, in order: (field, column, how read).
DETAILS = (
    ("opened_at", "opened_at", "date"),
    ("opened_by", "opened_by", "text"),
    ("caller", "caller_id", "text"),
    ("category", "category", "text"),
    ("subcategory", "subcategory", "text"),
    ("service", "cmdb_ci", "text"),
    ("impact", "impact", "level"),
    ("urgency", "urgency", "level"),
    ("priority", "priority", "priority"),
    ("assignment_group", "assignment_group", "text"),
    ("assignee", "assigned_to", "text"),
    ("reopen_count", "reopen_count", "count"),
    ("reassignment_count", "reassignment_count", "count"),
    ("resolution_code", "closed_code", "text"),
    ("resolved_by", "resolved_by", "text"),
    ("resolved_at", "resolved_at", "date"),
    ("closed_at", "closed_at", "date"),
    ("made_sla", "made_sla", "boolean"),
    ("title", "u_symptom", "text"),
    ("channel", "contact_type", "channel"),
)


class NotAnIncidentExport(ValueError):
    """The file is not a ServiceNow incident export this importer understands."""


@dataclass
class ImportStats:
    rows: int = 0
    produced: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
        return (
            f"{self.rows} rows read, {self.produced} snapshots produced"
            f"{f', skipped: {skipped}' if skipped else ''} in {self.seconds:.1f} s"
            f" ({self.rate:,.0f} rows/s)"
        )


class ExportChanged(RuntimeError):
    """The export differed between the reading that ordered it and the one that sent it."""


class SkipRow(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- values ------------------------------------------------------------------------------------


def _text(value: str) -> str | None:
    value = value.strip()
    return None if value in ("", "?") else value


def _level(value: str) -> int | None:
    """ "2 - Medium" -> 2."""
    text = _text(value)
    if text is None:
        return None
    head = text.split("-", 1)[0].strip()
    return int(head) if head in ("1", "2", "3") else None


def _priority(value: str) -> str | None:
    """ "3 - Moderate" -> "P3"."""
    text = _text(value)
    if text is None:
        return None
    head = text.split("-", 1)[0].strip()
    return f"P{head}" if head in ("1", "2", "3", "4") else None


def _count(value: str) -> int | None:
    text = _text(value)
    return int(text) if text is not None and text.isdigit() else None


def _boolean(value: str) -> bool | None:
    return BOOLEANS.get(value.strip().lower())


def _channel(value: str) -> str | None:
    return CHANNELS.get(value.strip())


class DateParser:
    """Day-first `D/M/YYYY HH:MM[:SS]` -> ISO text; memoised (the log repeats dates a lot)."""

    def __init__(self, source_timezone: str | None = None) -> None:
        self.zone = ZoneInfo(source_timezone) if source_timezone else None
        self._memo: dict[str, str | None] = {}

    def __call__(self, value: str) -> str | None:
        try:
            return self._memo[value]
        except KeyError:
            pass
        parsed = self._parse(value)
        if len(self._memo) < 500_000:
            self._memo[value] = parsed
        return parsed

    def _parse(self, value: str) -> str | None:
        text = _text(value)
        if text is None:
            return None
        moment = _day_first(text)
        if self.zone is not None:
            return moment.replace(tzinfo=self.zone).isoformat()
        return moment.isoformat()


def _day_first(text: str) -> datetime:
    """`D/M/YYYY HH:MM[:SS]`, or SkipRow."""
    day_part, _, time_part = text.partition(" ")
    try:
        day, month, year = (int(p) for p in day_part.split("/"))
        clock = [int(p) for p in time_part.split(":")] if time_part else [0, 0]
        return datetime(year, month, day, clock[0], clock[1], clock[2] if len(clock) > 2 else 0)
    except (ValueError, IndexError):
        raise SkipRow("unparseable date") from None


# -- rows -> snapshots --------------------------------------------------------------------------


class RowMapper:
    """Maps rows of one export (given its header) to `incident.snapshot` data."""

    def __init__(self, header: list[str], source_timezone: str | None = None) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise NotAnIncidentExport(
                f"not a ServiceNow incident export: no column {', '.join(missing)}"
                f" (columns: {', '.join(header[:12])}...)"
            )
        self.column = {name: i for i, name in enumerate(header)}
        self.date = DateParser(source_timezone)
        self.wall_clock = DateParser()  # offset-free ISO text sorts as the source's clock
        self.details = _details(self.date)

    def order_key(self, row: list[str]) -> tuple[str, int, str] | None:
        """(ref, mod_count, updated_at) that place a row among its ticket's rows; None for a
        row `snapshot` would skip for lack of them."""
        if len(row) != len(self.column):
            return None
        ref = _text(self._get(row, "number"))
        mod_count = _count(self._get(row, "sys_mod_count"))
        try:
            updated_at = self.wall_clock(self._get(row, "sys_updated_at"))
        except SkipRow:
            return None
        if ref is None or mod_count is None or updated_at is None:
            return None
        return ref, mod_count, updated_at

    def _get(self, row: list[str], name: str) -> str:
        index = self.column.get(name)
        return row[index] if index is not None and index < len(row) else "?"

    def snapshot(self, row: list[str]) -> dict[str, Any]:
        """The data of one incident.snapshot; raises SkipRow for rows that are not one."""
        if len(row) != len(self.column):
            raise SkipRow("wrong number of columns")
        state, hold_reason = self._state(row)
        return {
            **self._identity(row),
            "state": state,
            "hold_reason": hold_reason,
            **{name: read(self._get(row, column)) for name, column, read in self.details},
        }

    def _state(self, row: list[str]) -> tuple[str, str | None]:
        raw_state = self._get(row, "incident_state").strip()
        if raw_state not in STATES:
            raise SkipRow(f"state {raw_state}")
        return STATES[raw_state]

    def _identity(self, row: list[str]) -> dict[str, Any]:
        """Which ticket, which of its updates, and who made it."""
        ref = _text(self._get(row, "number"))
        mod_count = _count(self._get(row, "sys_mod_count"))
        updated_at = self.date(self._get(row, "sys_updated_at"))
        if ref is None or mod_count is None or updated_at is None:
            raise SkipRow("no number, sys_mod_count or sys_updated_at")
        updated_by = _text(self._get(row, "sys_updated_by"))
        return {
            "ref": ref,
            "mod_count": mod_count,
            "updated_at": updated_at,
            "updated_by": updated_by,
        }


def _details(date: DateParser) -> list[tuple[str, str, Callable[[str], Any]]]:
    """DETAILS, each with the function that reads its column."""
    readers: dict[str, Callable[[str], Any]] = {
        "text": _text,
        "level": _level,
        "priority": _priority,
        "count": _count,
        "date": date,
        "boolean": _boolean,
        "channel": _channel,
    }
    return [(name, column, readers[kind]) for name, column, kind in DETAILS]


def cloud_event(
    data: dict[str, Any], row_index: int, source: str = DEFAULT_SOURCE
) -> dict[str, Any]:
    """The CloudEvent of one snapshot; its id is unique per row of the export."""
    return {
        "specversion": "1.0",
        "id": f"{data['ref']}:{data['mod_count']}:{row_index}",
        "source": source,
        "type": SNAPSHOT_TYPE,
        "time": data["updated_at"],
        "subject": data["ref"],
        "datacontenttype": "application/json",
        "data": data,
    }


def open_text(path: Path | str) -> io.TextIOBase:
    """The export as text; gzip is recognised by its magic bytes, whatever the file is called."""
    path = Path(path)
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def count_rows(path: Path | str) -> int:
    """Data rows (lines minus the header), for the progress bar; cheap, no CSV parsing."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    lines = 0
    with gzip.open(path, "rb") if gzipped else open(path, "rb") as raw:
        while chunk := raw.read(1 << 20):
            lines += chunk.count(b"\n")
    return max(lines - 1, 0)


def _export_rows(
    path: Path | str, source_timezone: str | None, limit: int | None
) -> Iterator[tuple[RowMapper, int, list[str]]]:
    """The export's first `limit` data rows with their index, and the export's mapper."""
    with open_text(path) as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        mapper = RowMapper([h.strip() for h in header], source_timezone)
        for index, row in enumerate(itertools.islice(reader, limit)):
            yield mapper, index, row


def sending_order(path: Path | str, limit: int | None = None) -> dict[str, deque[int]]:
    """Per ticket, the indices of its rows in the order they are to be sent: by mod_count,
    the latest updated_at first among equal counts, file order among rows equal in both."""
    keys: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for mapper, index, row in _export_rows(path, None, limit):
        if (key := mapper.order_key(row)) is not None:
            ref, mod_count, updated_at = key
            keys[ref].append((mod_count, updated_at, index))
    return {ref: deque(index for *_, index in _sorted(rows)) for ref, rows in keys.items()}


def _sorted(rows: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    # Two stable sorts: updated_at descending, then mod_count ascending; ties keep file order.
    by_time = sorted(rows, key=lambda r: r[1], reverse=True)
    return sorted(by_time, key=lambda r: r[0])


class TicketTurns:
    """Releases each ticket's rows in sending order while the file is read in its own order;
    a row that arrives before its turn waits. A skipped row (None) only gives up its turn."""

    def __init__(self, order: dict[str, deque[int]]) -> None:
        self.order = order
        self.waiting: dict[str, dict[int, Any]] = {}

    def arrive(self, ref: str, index: int, item: Any) -> list[Any]:
        turns = self.order.get(ref)
        if turns is None:
            raise ExportChanged(f"{ref} has a row the first reading did not see")
        waiting = self.waiting.setdefault(ref, {})
        waiting[index] = item
        released = _released(turns, waiting)
        if not waiting:
            del self.waiting[ref]
        if not turns:
            del self.order[ref]
        return released

    def check_all_sent(self) -> None:
        if self.waiting:
            raise ExportChanged(
                f"rows of {len(self.waiting)} tickets never had their turn,"
                f" e.g. {next(iter(self.waiting))}"
            )


def _released(turns: deque[int], waiting: dict[int, Any]) -> list[Any]:
    """The waiting rows whose turn has come, in turn; a skipped row (None) is dropped."""
    released = []
    while turns and turns[0] in waiting:
        if (ready := waiting.pop(turns.popleft())) is not None:
            released.append(ready)
    return released


def snapshots(
    path: Path | str,
    source: str = DEFAULT_SOURCE,
    source_timezone: str | None = None,
    limit: int | None = None,
    stats: ImportStats | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(ref, CloudEvent) per importable row, each ticket's in sending order (`sending_order`);
    skipped rows counted in stats."""
    stats = stats if stats is not None else ImportStats()
    turns = TicketTurns(sending_order(path, limit))
    for mapper, index, row in _export_rows(path, source_timezone, limit):
        stats.rows += 1
        key = mapper.order_key(row)
        event = _event(mapper, row, index, source, stats)
        if key is not None:  # without one, `snapshot` skipped the row too
            for ready in turns.arrive(key[0], index, event):
                yield ready["subject"], ready
    turns.check_all_sent()


def _event(
    mapper: RowMapper, row: list[str], index: int, source: str, stats: ImportStats
) -> dict[str, Any] | None:
    """The row's CloudEvent; None for a row skipped (and counted)."""
    try:
        return cloud_event(mapper.snapshot(row), index, source)
    except SkipRow as skip:
        stats.skipped[skip.reason] += 1
        return None


class Sending(Protocol):
    """What a producer's `send` returns (kafka-python's FutureRecordMetadata)."""

    def add_errback(self, callback: Callable[[BaseException], object]) -> object: ...


class ImportProducer(Protocol):
    """The part of kafka-python's KafkaProducer the import uses."""

    def send(self, topic: str, key: bytes, value: bytes) -> Sending: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def make_import_producer(bootstrap: str) -> ImportProducer:
    """A producer tuned for throughput: big batches, a short linger, every write acked."""
    from kafka import KafkaProducer

    from infra.messaging.key_partitioner import KeyPartitioner

    producer: ImportProducer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        partitioner=KeyPartitioner(),
        client_id="itsm-servicenow-import",
    )
    return producer


def import_servicenow(
    path: Path | str,
    bootstrap: str,
    topic: str = DEFAULT_TOPIC,
    source: str = DEFAULT_SOURCE,
    source_timezone: str | None = None,
    limit: int | None = None,
    show_progress: bool = True,
    partitions: int | None = None,
    producer: ImportProducer | None = None,
) -> ImportStats:
    """Produce one incident.snapshot CloudEvent per row to `topic`; returns what was done.

    Returns only after the broker acknowledged every record (acks=all): a failure raises.
    """
    from infra.messaging.kafka_topics import ensure_topics

    if partitions:
        ensure_topics(bootstrap, [topic], partitions)
    sender = _Sender(producer or make_import_producer(bootstrap), topic)
    stats, started = ImportStats(), time.perf_counter()
    progress = _RowProgress(_total(path, limit)) if show_progress else None
    try:
        sender.send_all(snapshots(path, source, source_timezone, limit, stats), stats, progress)
    finally:
        if producer is None:
            sender.producer.close()
    sender.check()
    stats.seconds = time.perf_counter() - started
    return stats


def _total(path: Path | str, limit: int | None) -> int:
    total = count_rows(path)
    return min(total, limit) if limit is not None else total


class _RowProgress:
    """The progress bar, moved on every 2000 rows or more rather than at every row."""

    def __init__(self, total: int) -> None:
        from infra.progress import Progress

        self.bar, self.shown = Progress(total, "import"), 0

    def update(self, rows: int) -> None:
        if rows - self.shown >= 2000:
            self.bar.advance(rows - self.shown)
            self.shown = rows

    def close(self, rows: int) -> None:
        self.bar.advance(rows - self.shown)
        self.bar.close()


class _Sender:
    """Sends the snapshots to `topic`; stops at the broker's first refusal."""

    def __init__(self, producer: ImportProducer, topic: str) -> None:
        self.producer, self.topic = producer, topic
        self.failures: list[BaseException] = []

    def send_all(
        self,
        events: Iterable[tuple[str, dict[str, Any]]],
        stats: ImportStats,
        progress: _RowProgress | None,
    ) -> None:
        dumps, send, topic = orjson.dumps, self.producer.send, self.topic
        for ref, event in events:
            send(topic, key=ref.encode(), value=dumps(event)).add_errback(self.failures.append)
            stats.produced += 1
            if progress is not None:
                progress.update(stats.rows)
            if self.failures:
                break
        self.producer.flush()
        if progress is not None:
            progress.close(stats.rows)

    def check(self) -> None:
        if self.failures:
            raise RuntimeError(
                f"the broker refused a snapshot: {self.failures[0]!r}"
            ) from self.failures[0]


def iter_events(path: Path | str, **options: Any) -> Iterable[dict[str, Any]]:
    """The CloudEvents alone (for POST /v1/inbound or tests)."""
    return (event for _, event in snapshots(path, **options))
