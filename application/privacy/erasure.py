"""Erasing a data subject, and telling them what is held about them (docs/privacy.md).

The erasure is recorded first (an `Erasure` aggregate's `SubjectErased`: who asked, when,
why, on which legal basis), then the subject's key is deleted. Run again after a failure
between the two, it finds the record and completes the deletion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from application.desk.errors import NotFound
from domain.privacy.commands import EraseSubject
from domain.privacy.erasure import erasure_id
from domain.shared_kernel.command_context import Context

SUBJECT_KINDS = ("caller", "person")  # a caller; a person who acts (an agent)


class KeyStore(Protocol):
    def current(self, kind: str, name: str) -> str: ...

    def erase(self, subject: str, by: str, reason: str, legal_basis: str) -> bool: ...

    def status(self, subject: str) -> dict[str, Any] | None: ...


class Desk(Protocol):
    def create(self, command: Any, ctx: Context) -> Any: ...

    def find(self, aggregate_id: Any) -> Any: ...


@dataclass(frozen=True)
class Erased:
    subject: str
    aggregates: list[str]
    already: bool  # the key was deleted before this request


class Erasures:
    def __init__(self, desk: Desk, keys: KeyStore) -> None:
        self.desk, self.keys = desk, keys

    def subject(self, kind: str, name: str) -> str:
        if kind not in SUBJECT_KINDS:
            raise ValueError(f"a subject is named as one of {', '.join(SUBJECT_KINDS)}")
        return self.keys.current(kind, name)

    def erase(self, kind: str, name: str, reason: str, legal_basis: str, ctx: Context) -> Erased:
        return self.erase_subject(self.subject(kind, name), reason, legal_basis, ctx)

    def erase_subject(self, subject: str, reason: str, legal_basis: str, ctx: Context) -> Erased:
        held = self.keys.status(subject)
        if held is None:
            raise NotFound("nothing is held about that person")
        if self.desk.find(erasure_id(subject)) is None:
            self.desk.create(EraseSubject(subject, reason, legal_basis), ctx)
        deleted = self.keys.erase(subject, ctx.by.id, reason, legal_basis)
        return Erased(subject, list(held["aggregates"]), already=not deleted)

    def report(self, kind: str, name: str) -> dict[str, Any]:
        """What is held about the person: their subject, its key's state, its aggregates."""
        return self.report_subject(self.subject(kind, name))

    def report_subject(self, subject: str) -> dict[str, Any]:
        held = self.keys.status(subject)
        if held is None:
            raise NotFound("nothing is held about that person")
        return {"subject": subject, **held}
