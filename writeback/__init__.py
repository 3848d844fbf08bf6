"""kpisync writeback layer."""
