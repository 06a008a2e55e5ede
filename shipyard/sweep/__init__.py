"""Sweeps: search spaces, Optuna's samplers and pruning, and trials run as pipeline runs."""
