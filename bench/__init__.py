"""Benchmarks against the peer tools, run side by side in one process tree (``make bench``)."""
