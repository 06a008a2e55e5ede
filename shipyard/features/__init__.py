"""Feature views from a Feast repository: point-in-time retrieval with guards, online lookup, skew.

Nothing in this package imports Feast at module level: a project without ``features:`` in
shipyard.yaml never pays Feast's import (8-10 s, ~570 MB installed). Feast is loaded by
``shipyard.features.repo`` only when a stage, a command or a deployment uses a feature view.
"""
