"""Service level management as the write path sees it: SLA policies, not numbered."""

from __future__ import annotations

from application.desk.practice import Practice
from domain.sla.sla_policy import SlaPolicy

SLA_POLICY = Practice(name="sla_policy", aggregates=(SlaPolicy,), noun="SLA policy")
