"""KPI routes: by period and dimension, as JSON, CSV or a chart."""
