"""Metrics, one module per benchmark family; each registers itself in eval.api.METRICS."""
