"""Experiment tracking: runs, params, metrics (buffered writes), artifacts, inputs, search, diffs.

The Python API lives in ``fluent`` and is re-exported from ``shipyard`` itself; ``service`` holds
the store-level functions the REST API and the CLI share; ``search`` and ``filter`` implement the
filter language; ``diff`` compares runs and git revisions.
"""
