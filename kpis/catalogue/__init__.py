"""The catalogue of KPIs, one module per family; importing it fills the registry."""

from kpis.catalogue import activity, customers, funnel, results, targets

__all__ = ["activity", "customers", "funnel", "results", "targets"]
