"""Supply chain: what a model file is (scanning), what it was built with (SBOM), who made it (signing).

Modules: ``allowlist`` (the globals a pickle of each flavor may import, and why others are refused),
``pickles`` (a static, symbolic walk of pickle opcodes, following joblib arrays and nested pickles),
``scan`` (every supported file format, one report). Nothing here imports an interface.
"""
