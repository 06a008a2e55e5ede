"""The model gateway: routing, per-version metrics, request log and feedback (see app.py)."""
