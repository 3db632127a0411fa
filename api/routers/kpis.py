"""KPIs for analysts: by period and dimension, as JSON, CSV or a chart."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/kpis", tags=["kpis"])
