"""The live dashboard and the API docs page, with every file they load shipped in the package.

No CDN, no build step, no large Python package carried for one file: the dashboard draws its
charts with uPlot (about 50 KB, MIT) and ``/docs`` is Swagger UI, both vendored from the npm
registry into ``static/vendor/`` with their licences (``scripts/vendor-assets.sh`` refreshes them;
``VERSIONS`` and ``SHA256SUMS`` say exactly what is there). Many data centres, and this project's
own CI, have no internet: a page that fetched its scripts from a CDN would stay blank there.

Static files are served from a fixed set (every file under ``static/``, listed once at import:
no path from a request ever reaches the filesystem), gzip-compressed for clients that accept it
(compressed once, then kept), with an ETag so a reload costs a 304. The page holds no data: it
reads the REST API once and then follows the SSE stream.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

_STATIC = importlib.resources.files("vmscale.api") / "static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = frozenset({".html", ".js", ".css", ".svg", ".txt"})
_MIN_GZIP_BYTES = 1024  # below this, gzip's header costs more than it saves
SWAGGER_UI = "vendor/swagger-ui"

router = APIRouter(include_in_schema=False)


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    files: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            files.update(_walk(entry, name + "/"))
        elif _suffix(name) in _TYPES:
            files[name] = entry
    return files


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > name.rfind("/") else ""


# What can be served, fixed when the module loads (LICENSE/NOTICE files have no served suffix).
ASSETS: dict[str, Traversable] = _walk(_STATIC)


@functools.lru_cache(maxsize=64)
def _asset(name: str) -> tuple[bytes, bytes | None, str]:
    """(body, gzip-compressed body or None, ETag) of one asset, computed once."""
    body = ASSETS[name].read_bytes()
    packed = None
    if _suffix(name) in _COMPRESSIBLE and len(body) >= _MIN_GZIP_BYTES:
        # mtime=0: the same bytes every time, so caches and ETags agree across restarts.
        packed = gzip.compress(body, compresslevel=9, mtime=0)
    return body, packed, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


def serve_asset(request: Request, name: str) -> Response:
    if name not in ASSETS:  # a fixed set: no path tricks can reach other files
        raise HTTPException(404, f"no static file {name!r}")
    body, packed, etag = _asset(name)
    headers = {
        # Revalidate every time (an upgrade is picked up on the next load); the ETag makes that cheap.
        "Cache-Control": "no-cache",
        "ETag": etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    if packed is not None and _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        body = packed
    return Response(body, media_type=_TYPES[_suffix(name)], headers=headers)


@router.get("/")
def index(request: Request) -> Response:
    return serve_asset(request, "index.html")


@router.get("/static/{name:path}")
def asset(request: Request, name: str) -> Response:
    return serve_asset(request, name)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """Swagger UI over this API's OpenAPI schema, every asset from this server."""
    # imported here: it pulls in pydantic.v1 (~20 ms), which only the docs page needs
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title=f"{request.app.title} — docs",
        swagger_js_url=f"/static/{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"/static/{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
        # No "validate this spec" badge: it would send the schema to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
