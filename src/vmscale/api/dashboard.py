"""The live dashboard: one HTML page plus static JS/CSS shipped inside the package.

Charts use plotly.js, served from the *installed* ``plotly`` Python package's own bundled copy
(``plotly/package_data/plotly.min.js``): no npm, no CDN, no build step, and the version is
pinned by the Python dependency. The page and the data it shows need no server-side rendering:
it reads the REST API once and then follows the SSE stream.
"""

from __future__ import annotations

import functools
import importlib.resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

_STATIC = importlib.resources.files("vmscale.api") / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSETS = frozenset({"app.js", "style.css", "favicon.svg"})
# The page is static and holds no data: a short cache is safe; scripts revalidate so an
# upgrade is picked up on the next load.
_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

router = APIRouter(include_in_schema=False)


def _read(resource: Traversable) -> bytes:
    try:
        return resource.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise HTTPException(404, "not found") from None


@functools.lru_cache(maxsize=1)
def plotly_js() -> bytes:
    """The plotly.js bundle of the installed ``plotly`` package (a declared dependency)."""
    try:
        return (importlib.resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise RuntimeError("plotly is not installed: `pip install plotly` (a vmscale dependency)") from exc


@router.get("/")
def index() -> Response:
    return Response(_read(_STATIC / "index.html"), media_type=_TYPES[".html"], headers=_CACHE)


@router.get("/static/plotly.min.js")
def plotly() -> Response:
    try:
        body = plotly_js()
    except RuntimeError as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(body, media_type=_TYPES[".js"], headers={"Cache-Control": "max-age=86400"})


@router.get("/static/{name}")
def asset(name: str) -> Response:
    if name not in _ASSETS:  # a fixed list: no path tricks can reach other files
        raise HTTPException(404, f"no static file {name!r}")
    suffix = name[name.rfind(".") :]
    return Response(_read(_STATIC / name), media_type=_TYPES[suffix], headers=_CACHE)
