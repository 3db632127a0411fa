"""What every command shares: the rules it is judged by, and the two shapes it comes in.

HTTP routers, inbound consumers, the SLA scheduler and policy edits build these objects, and
the one application service (application/desk/service_desk.py) runs them: every entry point
goes through one path into the aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from domain.shared_kernel.command_context import Context
from domain.shared_kernel.priority import PriorityMatrix


@dataclass(frozen=True)
class Rules:
    """The configured rules commands are judged by (one set per deployment)."""

    matrix: PriorityMatrix


class Command(Protocol):
    """Changes one existing aggregate of its practice."""

    practice: ClassVar[str]

    def run(self, aggregate: Any, ctx: Context, rules: Rules) -> None: ...


class Creation(Protocol):
    """Brings a new aggregate into being; `practice` says whose numbering it takes."""

    practice: ClassVar[str]

    def run(self, number: str | None, ctx: Context, rules: Rules) -> Any: ...
