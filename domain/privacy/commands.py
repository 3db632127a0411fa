"""Commands of the privacy practice: what a data protection officer asks (`itsm gdpr`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from domain.privacy.erasure import Erasure
from domain.shared_kernel.command_context import Context
from domain.shared_kernel.commands import Rules

PRACTICE = "privacy"


@dataclass(frozen=True)
class EraseSubject:
    subject: str  # the pseudonym, never the person's name
    reason: str
    legal_basis: str

    practice: ClassVar[str] = PRACTICE

    def run(self, number: str | None, ctx: Context, rules: Rules) -> Erasure:
        return Erasure.record(self.subject, self.reason, self.legal_basis, ctx.by, ctx.causation_id)
