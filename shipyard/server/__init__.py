"""``shipyard server``: the REST API (Shipyard's own and an MLflow-compatible subset) as one ASGI app."""
