"""kpisync connectors layer."""
