"""Who asks, on behalf of which request, and which version they saw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from domain.shared_kernel.actor import Actor


@dataclass(frozen=True)
class Context:
    """Who asks, on behalf of which request, and which version they saw (If-Match)."""

    by: Actor
    causation_id: str
    expected_version: int | None = None
    # When it happened at the source (an upstream system's record); None means now.
    occurred_at: datetime | None = None
