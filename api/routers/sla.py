"""SLA policies, clocks, breaches and what-if simulations (issue 3)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/sla", tags=["sla"])
