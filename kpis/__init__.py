"""kpisync kpis layer."""
