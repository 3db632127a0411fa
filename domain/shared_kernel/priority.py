"""Impact x urgency -> priority, the matrix every practice shares."""

from __future__ import annotations

from dataclasses import dataclass

from domain.shared_kernel.errors import InvalidValue


def check_level(name: str, value: int) -> int:
    # 2.0 equals 2 but cannot index the priority matrix.
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2, 3):
        raise InvalidValue(f"{name} must be 1 (high), 2 (medium) or 3 (low), not {value!r}")
    return value


@dataclass(frozen=True)
class PriorityMatrix:
    """Impact x urgency -> priority. Rows are impact 1..3, columns urgency 1..3."""

    rows: tuple[tuple[str, str, str], ...] = (
        ("P1", "P2", "P3"),
        ("P2", "P3", "P4"),
        ("P3", "P4", "P4"),
    )

    def __post_init__(self) -> None:
        cells = {cell for row in self.rows for cell in row}
        if [len(row) for row in self.rows] != [3, 3, 3] or not cells <= {"P1", "P2", "P3", "P4"}:
            raise InvalidValue("a priority matrix is 3x3 cells of P1..P4")

    def priority(self, impact: int, urgency: int) -> str:
        return self.rows[check_level("impact", impact) - 1][check_level("urgency", urgency) - 1]

    @classmethod
    def parse(cls, text: str) -> PriorityMatrix:
        """Parse 'P1,P2,P3;P2,P3,P4;P3,P4,P4' (rows = impact 1..3)."""
        return cls(rows=tuple(_three_cells(row) for row in text.split(";")))


def _three_cells(row: str) -> tuple[str, str, str]:
    try:
        first, second, third = (cell.strip() for cell in row.split(","))
    except ValueError:
        raise InvalidValue("a priority matrix is three rows of three cells") from None
    return first, second, third
