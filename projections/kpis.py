"""KPI read model for analysts: per-incident facts and state intervals, aggregated at query time.

The projection (write side) is in projections/kpi_facts.py, the queries in
projections/kpi_queries.py; definitions of every KPI are in docs/kpis.md.
"""
from projections.kpi_facts import KpiProjection, fold
from projections.kpi_queries import (
    KPI_FIELDS, PERIODS, FACT_DIMENSIONS, KpiQueryError, Period, data_span, kpis, percentile,
    periods, state_breakdown,
)

DIMENSIONS = tuple(FACT_DIMENSIONS)

__all__ = ["KpiProjection", "fold", "KPI_FIELDS", "PERIODS", "DIMENSIONS", "KpiQueryError",
           "Period", "data_span", "kpis", "percentile", "periods", "state_breakdown"]
