"""Request and response bodies of the SLA API (and the CLI's draft files).

Durations are ISO-8601 (`"PT4H"`, `"P3D"`) or a number of seconds; they are stored in
seconds. A target map is keyed by priority P1..P4, or "*" for the priorities not listed.
The domain decides which targets it accepts (domain/sla/sla_policy.py: positive, at most 366
days, due within 732 days on the policy's calendar) and refuses the rest with a 422.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from application.sla.policy_document import PolicyCreate, _Body


class PolicyVersion(BaseModel):
    version: int
    effective_from: datetime
    actor: dict[str, str]
    causation_id: str
    spec: dict[str, Any]


class PolicyOut(BaseModel):
    id: str
    version: int
    name: str
    active: bool
    rank: int
    spec: dict[str, Any] = Field(description="the current specification, durations in seconds")
    versions: list[PolicyVersion] | None = None


class SimulationRequest(_Body):
    draft: PolicyCreate
    start: AwareDatetime = Field(alias="from")
    end: AwareDatetime = Field(alias="to")
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
