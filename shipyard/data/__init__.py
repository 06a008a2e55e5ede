"""Datasets: versions, schemas (inference and validation), reference profiles and drift statistics."""
