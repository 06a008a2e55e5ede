"""CI integration: environment detection, reports, pull-request comments, templates, remote sync.

Modules are imported on use: ``env`` (which CI, which PR), ``git``, ``forges`` (comments over REST),
``report`` and ``plots`` (Markdown, HTML, JSON, PNG), ``templates`` (workflow files), ``sync``
(``shipyard push`` / ``pull``) and ``runner`` (``shipyard ci`` composed from the services).
"""
