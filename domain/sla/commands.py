"""Commands on SLA policies: what a service level manager asks (HTTP, CLI, start-up)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules
from domain.sla.sla_policy import SlaPolicy


@dataclass(frozen=True)
class DefinePolicy:
    spec: Mapping[str, Any]
    policy_id: UUID | None = None  # a deterministic id: the default policy

    practice: ClassVar[str] = "sla_policy"

    def run(self, number: str | None, ctx: Context, rules: Rules) -> SlaPolicy:
        return SlaPolicy.create(self.spec, ctx.by, ctx.causation_id, policy_id=self.policy_id)


@dataclass(frozen=True)
class RevisePolicy:
    """A new version: the whole specification (PUT), or only the keys given (PATCH)."""

    spec: Mapping[str, Any]
    partial: bool = False

    practice: ClassVar[str] = "sla_policy"

    def run(self, policy: SlaPolicy, ctx: Context, rules: Rules) -> None:
        change = policy.amend if self.partial else policy.revise
        change(self.spec, ctx.by, ctx.causation_id)
