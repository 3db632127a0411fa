"""Moments as fixed-width UTC text: string order is time order in any SQL engine."""

from __future__ import annotations

from datetime import datetime, timezone


def iso(moment: datetime) -> str:
    """Fixed-width UTC text, so that string order is time order in any SQL engine, and
    `datetime.fromisoformat` reads it back. (strftime's %Y does not pad years before 1000
    on every platform.)"""
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"
