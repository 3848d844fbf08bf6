"""Reliability and security suite: crashes, faults, bad input, schema drift and secrets.

The fast part runs with the default ``pytest``; the long soak runs with ``pytest -m soak``.
"""
