"""An independent, plain-Python reference implementation of the KPI catalogue.

It exists only to cross-check the real (polars) engine in ``kpis/``: it is written from the
written specification alone, with straightforward loops and dicts, and shares no code with it.
"""

from __future__ import annotations

from .catalogue import compute_reference

__all__ = ["compute_reference"]
