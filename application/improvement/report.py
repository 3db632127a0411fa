"""The improvement report's contents: everything a review board reads about one improvement,
gathered as plain data for a template (api/improvement/improvement_report.py renders it).

The control table is the latest recorded verification, the one the verdict rests on; an
improvement without one shows a progress view computed now, marked as not recorded, so a
reader never takes a figure of the moment for the reviewed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from application.improvement.trend import Milestone
from application.improvement.verification import Verification, recorded
from domain.improvement.design import control_table
from domain.improvement.improvement import Improvement
from projections.kpi.kpi_scope import SMALL_SAMPLE

_PERIODS = ("baseline", "review")


@dataclass(frozen=True)
class Control:
    """A control table as the report shows it: recorded (its number, who, when) or a
    progress view computed now; each row with its small-sample warnings."""

    recorded: bool
    rows: list[dict[str, Any]]
    pinned: Mapping[str, Any]
    number: int | None = None
    by: str | None = None
    at: datetime | None = None


def recorded_control(improvement: Improvement) -> Control | None:
    """The latest recorded verification, or None."""
    verification = improvement.verification
    if verification is None:
        return None
    rows = [{**row, "warnings": warnings(row)} for row in verification["control_table"]]
    return Control(
        True,
        rows,
        dict(verification["pinned"]),
        verification["number"],
        verification["by"],
        verification["at"],
    )


def progress_control(verification: Verification, improvement: Improvement) -> Control:
    """The control table computed from the history now, as `verify` without `record`."""
    pins = verification.pins(improvement, None)
    results = verification.results(improvement, pins)
    alerts = {row["goal_id"]: row["warnings"] for row in results}
    rows = control_table(improvement.goals, recorded(results))
    return Control(
        False, [{**row, "warnings": alerts[row["goal_id"]]} for row in rows], pins.stored()
    )


def warnings(row: Mapping[str, Any]) -> list[str]:
    """The warnings `verify` gives, from a recorded row's counts (they are not recorded)."""
    return [
        f"the {name} period has only {row[name]['count']} tickets behind its figure: too few"
        " for it to mean much"
        for name in _PERIODS
        if row[name]["count"] < SMALL_SAMPLE
    ]


@dataclass(frozen=True)
class Report:
    """What the template reads; `improvement` is the aggregate as it is now."""

    improvement: Improvement
    control: Control | None
    milestones: Sequence[Milestone] = ()
    chart_svg: str = ""  # the trend chart, inline
    generated_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what a rendering adds

    def context(self) -> dict[str, Any]:
        """The template's variables: the aggregate's parts under plain names."""
        improvement = self.improvement
        return {
            "improvement": improvement,
            "design": improvement.design,
            "goals": improvement.goals,
            "actions": improvement.plan["actions"],
            "raci": improvement.plan["raci"],
            "control": self.control,
            "causes": improvement.cause_analyses,
            "milestones": self.milestones,
            "implementation": implementation_dates(self.milestones),
            "scope": {k: v for k, v in improvement.design["scope"].items() if v},
            "chart_svg": self.chart_svg,
            "generated_at": self.generated_at,
            **self.extra,
        }


def implementation_dates(milestones: Sequence[Milestone]) -> dict[str, datetime]:
    """The latest moment of each kind: after a re-approval, the approval that holds."""
    return {m.kind: m.at for m in milestones}
