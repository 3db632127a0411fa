"""Inbound events from upstream systems (CloudEvents over HTTP)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/inbound", tags=["inbound"])
