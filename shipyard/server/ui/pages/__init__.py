"""One module per area of the web UI; each exposes ``routes`` and ``permissions`` (see ``shipyard.server.ui``)."""
