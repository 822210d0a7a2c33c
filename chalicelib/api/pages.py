"""The live dashboard (API.md: ``GET /``): one page and the files it loads, from ``chalicelib/web``.

No API key for these routes: the page asks for the key itself and then speaks only the public
contract, like any client. The route fills in the stage and where the WebSocket API is
(``WS_PUBLIC_URL``); the Content-Security-Policy lets the page load scripts, styles and images
from this origin only and connect to this origin and to the WebSocket API, nothing else.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from chalice.app import Blueprint, Response

from ..config import Settings, get_settings
from .errors import error_body

__all__ = ["WEB_DIR", "bp", "content_security_policy"]

bp = Blueprint(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml; charset=utf-8",
}
# Files change with a deployment, their names do not: the browser revalidates (ETag) each time.
_CACHE = "no-cache"
_SAFE_BASE = re.compile(r"^/[A-Za-z0-9._~/-]*$")


@dataclass(frozen=True)
class _Asset:
    body: str
    content_type: str
    etag: str


@lru_cache(maxsize=1)
def _assets() -> dict[str, _Asset]:
    """Every servable file by name, read once; nothing outside this list is ever opened."""
    assets: dict[str, _Asset] = {}
    for path in sorted(WEB_DIR.iterdir()):
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:24]
        assets[path.name] = _Asset(body, content_type, f'"{digest}"')
    return assets


@lru_cache(maxsize=1)
def _index_template() -> str:
    return (WEB_DIR / "index.html").read_text(encoding="utf-8")


def _ws_origin(ws_public_url: str) -> str | None:
    parts = urlsplit(ws_public_url)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: Settings) -> str:
    connect = "'self'"
    origin = _ws_origin(settings.ws_public_url)
    if origin:
        connect += f" {origin}"
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        f"connect-src {connect}",
        "base-uri 'self'",
        "form-action 'none'",  # forms are sent by the script, never natively
        "frame-ancestors 'none'",
    ])


def _headers(settings: Settings, content_type: str, **extra: str) -> dict[str, str | list[str]]:
    return {
        "Content-Type": content_type,
        "Cache-Control": _CACHE,
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        **extra,
    }


def _base_href() -> str:
    """The page's own path, so relative URLs work under an API Gateway stage (``/dev``) too."""
    context = bp.current_request.context or {}
    path = str(context.get("path") or "/")
    if not _SAFE_BASE.match(path):
        return "/"
    return path if path.endswith("/") else f"{path}/"


@bp.route("/", methods=["GET"])
def index() -> Response:
    settings = get_settings()
    page = (_index_template()
            .replace("{{base}}", html.escape(_base_href()))
            .replace("{{stage}}", html.escape(settings.stage))
            .replace("{{ws_url}}", html.escape(settings.ws_public_url)))
    return Response(body=page, status_code=200, headers=_headers(settings, "text/html; charset=utf-8"))


@bp.route("/static/{name}", methods=["GET"])
def static_file(name: str) -> Response:
    settings = get_settings()
    asset = _assets().get(name)
    if asset is None:
        return Response(body=error_body("not_found", f"no file {name!r}", "name"), status_code=404,
                        headers={"Content-Type": "application/json"})
    headers = _headers(settings, asset.content_type, ETag=asset.etag)
    if bp.current_request.headers.get("if-none-match") == asset.etag:
        return Response(body="", status_code=304, headers=headers)
    return Response(body=asset.body, status_code=200, headers=headers)
