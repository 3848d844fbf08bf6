"""kpisync service layer."""
