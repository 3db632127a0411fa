"""An incident as the KPI cells see it (projections/kpi/kpi_contributions.py), built from its
fact, its state intervals, the source's SLA verdict and the SLA read model's.

The SLA verdict and business time to resolve belong to the SLA read model (its `resolve`
clock). The cells count them where the incident was first resolved, so the KPI read model
follows the clocks' changes (`sla_clocks.seq`, which grows with each batch that changes a
clock) and keeps the verdict it last counted per incident in `kpi_sla_verdicts`: a change
takes the old verdict out and puts the new one in. Without the SLA read model in this
database there is no verdict from clocks, as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import orjson

from projections.kpi.kpi_cell_store import (
    AFTER_KEY,
    BuildKey,
    counted_upto,
    counts,
    hold_cells,
    set_meta,
)
from projections.kpi.kpi_contributions import (
    CellChanges,
    IncidentView,
    Interval,
    Measures,
    measures,
)
from projections.kpi.kpi_fact_fold import FACT_COLUMNS, Fact, Intervals
from projections.runtime.read_store import Row, Transaction, rows_where_in, savepoint

# The resolve clock's verdict as the cells counted it: (state, business seconds).
Verdict = tuple[str, float]
_FOLLOW_BATCH = 5000  # clocks read per batch of the KPI read model


@dataclass
class Extras:
    """What the views of a batch's incidents need besides their facts."""

    intervals: dict[str, dict[int, Interval]] = field(default_factory=lambda: defaultdict(dict))
    made_sla: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @classmethod
    def load(cls, tx: Transaction, incident_ids: set[str], intervals: bool = True) -> Extras:
        return cls.read(among(tx, incident_ids), intervals)

    @classmethod
    def read(cls, select: Select, intervals: bool = True) -> Extras:
        extras = cls()
        if intervals:
            for row in select(
                "SELECT incident_id, seq, state, hold_reason, group_name, entered_s, left_s"
                " FROM kpi_intervals WHERE incident_id"
            ):
                extras.intervals[row[0]][int(row[1])] = Interval(*row[2:])
        extras.made_sla = made_sla_of(select)
        extras.verdicts = verdicts_of(select)
        return extras

    def take(self, changed: Intervals) -> None:
        """The intervals a batch opened or closed."""
        for (incident_id, seq), row in changed.items():
            self.intervals[incident_id][seq] = Interval(row[2], row[3], row[4], row[6], row[8])

    def view(self, fact: Fact | None) -> IncidentView | None:
        if fact is None:
            return None
        incident_id = fact["incident_id"]
        verdict = self.verdicts.get(incident_id)
        moments = _moments(fact, self.made_sla.get(incident_id), verdict)
        resolved = fact["first_resolved_s"]
        return IncidentView(
            dims=(
                fact["owner_group"],
                fact["category"],
                fact["priority"],
                fact["service"],
                fact["owner_agent"],
            ),
            moments=moments,
            ttr_s=None if resolved is None else resolved - fact["opened_s"],
            intervals=dict(self.intervals.get(incident_id, {})),
        )


# Rows of a query that ends in "WHERE incident_id", for some incidents (`among`, `between`).
Select = Callable[[str], list[Row]]


def among(tx: Transaction, incident_ids: Iterable[str]) -> Select:
    return lambda sql: rows_where_in(tx, sql, (), incident_ids)


def load_facts(tx: Transaction, incident_ids: set[str]) -> dict[str, Fact | None]:
    rows = rows_where_in(
        tx, f"SELECT {', '.join(FACT_COLUMNS)} FROM kpi_facts WHERE incident_id", (), incident_ids
    )
    facts = [dict(zip(FACT_COLUMNS, row, strict=True)) for row in rows]
    return {fact["incident_id"]: {**fact, "record": orjson.loads(fact["record"])} for fact in facts}


def view_facts(select: Select) -> dict[str, Fact]:
    """The facts of some incidents, as far as their views read them (VIEW_COLUMNS)."""
    rows = select(f"SELECT {', '.join(VIEW_COLUMNS)} FROM kpi_facts WHERE incident_id")
    return {row[0]: dict(zip(VIEW_COLUMNS, row, strict=True)) for row in rows}


def views_after(
    tx: Transaction, after: BuildKey, limit: int
) -> list[tuple[BuildKey, IncidentView | None]]:
    """The views of the first `limit` incidents after `after` in a build's order."""
    rows = tx.execute(
        f"SELECT {', '.join(VIEW_COLUMNS)} FROM kpi_facts WHERE {AFTER_KEY}"
        " ORDER BY opened_s, incident_id LIMIT %s",
        [*after, limit],
    ).fetchall()
    facts = [dict(zip(VIEW_COLUMNS, row, strict=True)) for row in rows]
    extras = Extras.read(among(tx, [fact["incident_id"] for fact in facts]))
    return [((fact["opened_s"], fact["incident_id"]), extras.view(fact)) for fact in facts]


def made_sla_of(select: Select) -> dict[str, int]:
    rows = select("SELECT incident_id, made_sla FROM kpi_source_links WHERE incident_id")
    return {row[0]: int(row[1]) for row in rows if row[1] is not None}


def verdicts_of(select: Select) -> dict[str, Verdict]:
    rows = select("SELECT incident_id, state, elapsed_s FROM kpi_sla_verdicts WHERE incident_id")
    return {row[0]: (str(row[1]), float(row[2])) for row in rows}


def _moments(
    fact: Fact, made_sla: int | None, verdict: Verdict | None
) -> dict[str, tuple[float, Measures]]:
    moments = {}
    for name, column in MOMENT_COLUMNS.items():
        if fact[column] is not None:
            moments[name] = (fact[column], moment(fact, name, made_sla, verdict))
    return moments


# Each moment of an incident, and the fact column that says when it happened.
MOMENT_COLUMNS = {
    "opened": "opened_s",
    "acknowledged": "acknowledged_s",
    "resolved": "first_resolved_s",
    "closed": "closed_s",
    "cancelled": "cancelled_s",
}


# The fact columns `moment` reads for each moment, beside the moment's own.
MOMENT_READS = {
    "opened": (),
    "acknowledged": ("opened_s",),
    "resolved": (
        "opened_s",
        "reopen_count",
        "reassignments_at_resolution",
        "reassignment_count",
        "respond_breached",
        "resolve_breached",
    ),
    "closed": ("satisfaction",),
    "cancelled": (),
}
# The fact columns an incident's view reads (Extras.view, `moment`).
VIEW_COLUMNS = tuple(
    dict.fromkeys(
        (
            "incident_id",
            "owner_group",
            "category",
            "priority",
            "service",
            "owner_agent",
            *MOMENT_COLUMNS.values(),
            *(column for reads in MOMENT_READS.values() for column in reads),
        )
    )
)


def moment(fact: Fact, name: str, made_sla: int | None, verdict: Verdict | None) -> Measures:
    """What the incident's moment `name` (MOMENT_COLUMNS, which it has) adds to the cells."""
    if name == "opened":
        return _OPENED
    if name == "acknowledged":
        return measures(acknowledged=1, ack_s=fact["acknowledged_s"] - fact["opened_s"])
    if name == "resolved":
        return _resolution(fact, made_sla, verdict)
    if name == "closed":
        return _closure(fact["satisfaction"])
    return _CANCELLED


_OPENED, _CANCELLED = measures(opened=1), measures(cancelled=1)


def _resolution(fact: Fact, made_sla: int | None, verdict: Verdict | None) -> Measures:
    reopens = fact["reopen_count"] or 0
    met = sla_verdict(fact, made_sla, verdict)
    return measures(
        resolved=1,
        ttr_s=fact["first_resolved_s"] - fact["opened_s"],
        reopened=reopens > 0,
        first_contact=fact["reassignments_at_resolution"] == 0 and reopens == 0,
        reassignments=fact["reassignment_count"] or 0,
        sla_met=met == 1,
        sla_judged=met is not None,
        source_met=made_sla == 1,
        source_judged=made_sla is not None,
        business_s=verdict[1] if verdict else 0,
        business_n=verdict is not None,
    )


def sla_verdict(fact: Fact, made_sla: int | None, verdict: Verdict | None) -> int | None:
    """Met (1) or breached (0): the resolve clock when it has decided; else the source's own
    verdict for imported tickets; else breached if a breach was recorded; else none."""
    if verdict and verdict[0] in ("met", "breached"):
        return int(verdict[0] == "met")
    if made_sla is not None:
        return made_sla
    if fact["respond_breached"] == 1 or fact["resolve_breached"] == 1:
        return 0
    return None


@lru_cache(maxsize=16)
def _closure(satisfaction: int | None) -> Measures:
    if satisfaction is None:
        return measures(closed=1)
    return measures(
        closed=1,
        csat_n=1,
        csat_sum=satisfaction,
        promoters=satisfaction == 5,
        detractors=satisfaction <= 3,
    )


class SlaFollower:
    """Folds the SLA read model's resolve clocks into the cells as they change."""

    def __init__(self) -> None:
        self._present = False

    def follow(self, tx: Transaction, changes: CellChanges) -> None:
        generation = self._generation(tx)
        if generation is None or _followed(tx) == f"{generation}:{_latest(tx)}":
            return  # nothing new: no write, no lock
        mode = hold_cells(tx)  # before the position and the incidents are read
        followed, _, seq = _hold_position(tx).partition(":")
        since = int(seq) if followed == generation else 0
        latest = _latest(tx)  # every batch up to it has written its clocks: read them next
        clocks, whole = _clocks_since(tx, since)
        if clocks:
            verdicts = {row[0]: (str(row[1]), float(row[2])) for row in clocks}
            self._count(tx, verdicts, changes, counted_upto(mode))
        # The batches that changed no resolve clock (an acknowledgement stops the respond
        # clock only) are followed too, or the position would wait for the next verdict.
        upto = max((int(row[3]) for row in clocks), default=since)
        set_meta(tx, "sla_follow", f"{generation}:{max(upto, latest) if whole else upto}")

    def owed(self, tx: Transaction) -> int:
        """The resolve clocks the SLA read model changed that are not counted yet."""
        generation = self._generation(tx)
        if generation is None:
            return 0
        followed, _, seq = _followed(tx).partition(":")
        since = int(seq or 0) if followed == generation else 0
        # Exact, so that it falls with every batch followed: a caller waits while it falls.
        row = tx.execute(
            "SELECT COUNT(*) FROM sla_clocks WHERE metric = 'resolve' AND seq > %s", [since]
        ).fetchone()
        return int(row[0])

    def _generation(self, tx: Transaction) -> str | None:
        """The SLA read model's identity (a rebuild starts its numbering again); None when
        it has no tables in this database."""
        if not self._present:
            try:
                with savepoint(tx):
                    tx.execute("SELECT 1 FROM sla_meta WHERE name = 'created'").fetchall()
            except Exception:  # no such table (SQLite and PostgreSQL say it differently)
                return None
            self._present = True
        row = tx.execute("SELECT value FROM sla_meta WHERE name = 'created'").fetchone()
        return None if row is None else str(row[0])

    def _count(
        self,
        tx: Transaction,
        new: dict[str, Verdict],
        changes: CellChanges,
        upto: BuildKey | None,
    ) -> None:
        """The new verdicts, into the cells of the incidents they count (up to `upto`;
        None: all); the others' are counted with them, whole."""
        facts = [f for f in view_facts(among(tx, new)).values() if counts(upto, f)]
        ids = {fact["incident_id"] for fact in facts}
        before = Extras.load(tx, ids, intervals=False)
        after = Extras(made_sla=before.made_sla, verdicts={**before.verdicts, **new})
        for fact in facts:
            changes.incident(before.view(fact), after.view(fact))
        tx.executemany(
            "INSERT INTO kpi_sla_verdicts (incident_id, state, elapsed_s) VALUES (%s, %s, %s)"
            " ON CONFLICT (incident_id) DO UPDATE SET state = excluded.state,"
            " elapsed_s = excluded.elapsed_s",
            [[i, state, elapsed] for i, (state, elapsed) in new.items()],
        )


def _latest(tx: Transaction) -> int:
    row = tx.execute("SELECT value FROM sla_meta WHERE name = 'seq'").fetchone()
    return 0 if row is None else int(row[0])


def _followed(tx: Transaction) -> str:
    row = tx.execute("SELECT value FROM kpi_meta WHERE name = 'sla_follow'").fetchone()
    return "" if row is None else str(row[0])


def _hold_position(tx: Transaction) -> str:
    """Where the following stands ("<generation>:<seq>", or ""), holding its row until the
    transaction ends: members of one read model that follow at once would count twice."""
    row = tx.execute(
        "INSERT INTO kpi_meta (name, value) VALUES ('sla_follow', '') ON CONFLICT (name)"
        " DO UPDATE SET value = kpi_meta.value RETURNING value"
    ).fetchone()
    return str(row[0]) if row else ""


def _clocks_since(tx: Transaction, since: int) -> tuple[list[tuple[str, str, float, int]], bool]:
    """The resolve clocks changed after `since`, whole batches of at most about
    _FOLLOW_BATCH clocks (a batch of the SLA read model shares one number), and whether
    they are all of them."""
    cut = tx.execute(
        "SELECT seq FROM sla_clocks WHERE metric = 'resolve' AND seq > %s ORDER BY seq"
        " LIMIT 1 OFFSET %s",
        [since, _FOLLOW_BATCH],
    ).fetchone()
    bound = " AND seq <= %s" if cut else ""
    rows: list[tuple[str, str, float, int]] = tx.execute(
        "SELECT ticket_id, state, elapsed_s, seq FROM sla_clocks"
        f" WHERE metric = 'resolve' AND seq > %s{bound}",
        [since, *([cut[0]] if cut else [])],
    ).fetchall()
    return rows, cut is None
