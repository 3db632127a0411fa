"""An erasure: a data subject's personal data made unreadable for good (GDPR art. 17).

The subject is named by its pseudonym only: the person's name is the very thing erased.
Its personal data stay in the history as ciphertext under the subject's own key; the
erasure deletes that key (infra/privacy/vault.py) after this event records who asked, when,
why and on which legal basis. One erasure per subject: its id follows from the pseudonym.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.shared_kernel.actor import Actor
from domain.shared_kernel.errors import InvalidValue
from domain.shared_kernel.events import StampedEvent
from domain.shared_kernel.value_checks import CheckedEvent, check_text


class LegalBasis(StrEnum):
    """Why a person's data are erased (GDPR art. 17(1), and retention's end)."""

    CONSENT_WITHDRAWN = "consent_withdrawn"
    NO_LONGER_NECESSARY = "no_longer_necessary"
    OBJECTION = "objection"
    UNLAWFUL = "unlawful"
    LEGAL_OBLIGATION = "legal_obligation"
    RETENTION = "retention"


LEGAL_BASES = tuple(str(basis) for basis in LegalBasis)


def erasure_id(subject: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"itsm:erasure:{subject}")


class Erasure(Aggregate):
    class Event(StampedEvent):
        pass

    class SubjectErased(CheckedEvent, Aggregate.Created):
        class_version = 1
        subject: str  # the pseudonym
        reason: str
        legal_basis: str
        by: Actor
        causation_id: str

    @event(SubjectErased)
    def __init__(
        self, subject: str, reason: str, legal_basis: str, by: Actor, causation_id: str
    ) -> None:
        self.subject, self.reason, self.legal_basis = subject, reason, legal_basis

    @classmethod
    def record(
        cls, subject: str, reason: str, legal_basis: str, by: Actor, causation_id: str
    ) -> Erasure:
        if legal_basis not in LEGAL_BASES:
            raise InvalidValue(f"legal_basis must be one of {', '.join(LEGAL_BASES)}")
        if not reason.strip():
            raise InvalidValue("an erasure needs a reason")
        return cls._create(
            cls.SubjectErased,
            id=erasure_id(subject),
            subject=subject,
            reason=check_text("reason", reason.strip()),
            legal_basis=legal_basis,
            by=by,
            causation_id=causation_id,
        )
