"""The browser page: `GET /` (index.html) and its assets under `/ui/{name}`.

The files live in `serve/gateway/static/` inside the package and are served as they are; there
is no build step. Only the files of that folder are served, by exact name. The page itself needs
no API key (it holds no data); it sends the key the person types with its own requests.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@cache
def assets() -> dict[str, Path]:
    """Servable files by name: the static folder's files with a known media type."""
    return {
        path.name: path
        for path in STATIC_DIR.iterdir()
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


def asset_response(name: str) -> FileResponse:
    path = assets().get(name)
    if path is None:
        raise HTTPException(404, f"No page asset named '{name}'.")
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)


@router.get("/")
async def index() -> FileResponse:
    return asset_response("index.html")


@router.get("/ui/{name}")
async def asset(name: str) -> FileResponse:
    return asset_response(name)
