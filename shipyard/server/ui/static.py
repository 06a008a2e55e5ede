"""The vendored static files, served by name from a fixed list (no path from the URL reaches the disk)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# names carry their versions, so a browser may keep them for a year
_CACHE = "public, max-age=31536000, immutable"


@cache
def _files() -> dict[str, tuple[bytes, str]]:
    return {path.name: (path.read_bytes(), _TYPES[path.suffix])
            for path in STATIC_DIR.iterdir() if path.suffix in _TYPES}


async def static_file(request: Request) -> Response:
    """One vendored file (``/static/{name}``); 404 for any other name."""
    name = request.path_params["name"]
    found = _files().get(name)
    if found is None:
        return PlainTextResponse(f"no static file {name!r}", status_code=404)
    body, media_type = found
    return Response(body, media_type=media_type, headers={"Cache-Control": _CACHE})
