"""kpisync sandbox layer."""
