"""The continual improvement practice: its aggregate and its numbers (CSI register)."""

from __future__ import annotations

from application.desk.practice import Practice
from domain.improvement.improvement import PERSONAL_DATA, Improvement

IMPROVEMENT = Practice(
    name="improvement",
    aggregates=(Improvement,),
    number_prefix="CSI",
    clock_events=frozenset(Improvement.CLOCK_EVENTS),
    snapshots=True,
    personal_data={Improvement: PERSONAL_DATA},
)
