"""Data subjects' rights: erasure (art. 17) and access (art. 15), for administrators.

The person is named in the body, never in the URL: URLs end up in logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, model_validator

from api.deps import CommandCall, ContainerDep, command_by
from api.problem_details import problem_responses
from application.access import Role
from domain.privacy.erasure import LegalBasis

router = APIRouter(
    prefix="/v1/privacy", tags=["privacy"], responses=problem_responses(401, 403, 404, 422)
)
AdminCommand = Annotated[CommandCall, Depends(command_by(Role.ADMIN))]


class SubjectNamed(BaseModel):
    """The person: as a caller, or as someone who acts (an agent), named as their key is."""

    caller: str | None = Field(None, min_length=1, max_length=200)
    person: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one(self) -> SubjectNamed:
        if (self.caller is None) == (self.person is None):
            raise ValueError("name the person as exactly one of `caller` or `person`")
        return self

    def named(self) -> tuple[str, str]:
        return ("caller", self.caller) if self.caller else ("person", str(self.person))


class ErasureCreate(SubjectNamed):
    reason: str = Field(min_length=1, max_length=2000)
    legal_basis: LegalBasis


class ErasurePublic(BaseModel):
    subject: str = Field(description="The subject's pseudonym (the name is not kept)")
    aggregates: list[str] = Field(description="The tickets whose personal data were theirs")
    already: bool = Field(description="The key had been deleted by an earlier request")


class SubjectReport(BaseModel):
    subject: str
    has_key: bool
    created_at: str
    erased_at: str | None
    erased_by: str | None
    reason: str | None
    legal_basis: str | None
    aggregates: list[str]


@router.post("/erasures", status_code=201, operation_id="erase_subject", summary="Erase a person")
def erase_subject(
    body: ErasureCreate, call: AdminCommand, container: ContainerDep
) -> ErasurePublic:
    """Records the erasure (who, when, why, legal basis) and deletes the person's key: every
    field of theirs then reads "[erased]", everywhere, within seconds; the history, its
    hashes and every structural field (states, times, groups) stay as they were."""
    kind, name = body.named()
    done = container.erasures().erase(kind, name, body.reason, str(body.legal_basis), call.context)
    return ErasurePublic(subject=done.subject, aggregates=done.aggregates, already=done.already)


@router.post("/reports", operation_id="subject_report", summary="What is held about a person")
def subject_report(
    body: SubjectNamed, call: AdminCommand, container: ContainerDep
) -> SubjectReport:
    """Their subject, whether its key still exists, and the tickets holding their data."""
    return SubjectReport(**container.erasures().report(*body.named()))
