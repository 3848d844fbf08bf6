"""kpisync benchmarks: ``python -m bench --help``."""
