"""What the app answers when none of its views applies, in API.md's error shape.

- **A method a path does not serve** is a 405 ``method_not_allowed`` with ``Allow``. Chalice
  would answer it in its own shape, and only locally: on AWS, API Gateway answers a method the
  API does not define itself (403 ``Missing Authentication Token``) before any Lambda runs. So
  every path gets every other method, routed to one view that answers 405, the same locally and
  on AWS.
- **HEAD** is served wherever GET is, by the GET view; the server sends no body.
- **Chalice's own error responses** (``{"Code", "Message"}``), such as its 415 for a
  ``Content-Type`` a route does not consume, are reshaped by an ``http`` middleware.

What API Gateway itself answers (an unknown path) is ``infra.gateway_responses``.
``complete_routes(app)`` runs last in ``app.py``, once every blueprint has registered its routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, Request, Response

from .errors import error_body

__all__ = ["METHODS", "complete_routes", "contract_errors"]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_JSON = {"Content-Type": "application/json"}
# Chalice's error codes → the contract's; any other Code becomes snake_case without "Error".
_CODES = {
    "UnsupportedMediaType": "unsupported_media_type",
    "MethodNotAllowedError": "method_not_allowed",
    "InternalServerError": "internal_error",
}


def _json(status: int, body: Any, headers: dict[str, str | list[str]] | None = None) -> Response:
    return Response(body=json.dumps(body, separators=(",", ":")), status_code=status,
                    headers={**_JSON, **(headers or {})})


def complete_routes(app: Chalice) -> None:
    """Give every path of ``app`` HEAD (where it has GET) and a 405 for every other method, and
    reshape Chalice's own errors. Call it once, after every route is registered."""
    allowed: dict[str, str] = {}
    for path in list(app.routes):
        entries = app.routes[path]
        get = entries.get("GET")
        if get is not None and "HEAD" not in entries:
            app.route(path, methods=["HEAD"], content_types=get.content_types)(get.view_function)
        allowed[path] = ", ".join(m for m in METHODS if m in entries)
        has_cors = any(entry.cors for entry in entries.values())  # Chalice then answers OPTIONS itself
        missing = [m for m in METHODS if m not in entries and not (m == "OPTIONS" and has_cors)]
        if missing:
            app.route(path, methods=missing, content_types=["*/*"])(_method_not_allowed(app, allowed))
    app.register_middleware(contract_errors(allowed), "http")


def _method_not_allowed(app: Chalice, allowed: dict[str, str]) -> Callable[..., Response]:
    def method_not_allowed(**_path_parameters: str) -> Response:
        request = app.current_request
        assert request is not None  # a route's view always runs with its request
        path = request.context.get("resourcePath", "")
        return _json(405, error_body("method_not_allowed", f"{request.method} is not allowed on {path}"),
                     {"Allow": allowed.get(path, "")})

    return method_not_allowed


def contract_errors(allowed: dict[str, str]) -> Callable[[Request, Callable[[Request], Response]], Response]:
    """A middleware putting Chalice's own ``{"Code", "Message"}`` error responses in the contract's
    shape. Chalice answers a method no route names (TRACE, CONNECT, …) itself, with every method
    routed on the path in ``Allow``, the 405 view's included: ``Allow`` then lists only the methods
    the path serves (``allowed``, by resource path), as the 405 view's own answers do."""

    def middleware(event: Request, get_response: Callable[[Request], Response]) -> Response:
        response = get_response(event)
        body = response.body
        if response.status_code < 400 or not isinstance(body, dict) or set(body) != {"Code", "Message"}:
            return response
        chalice_code = str(body["Code"])
        code = (_CODES.get(chalice_code)
                or re.sub(r"(?<!^)(?=[A-Z])", "_", chalice_code.removesuffix("Error")).lower())
        message, field = str(body["Message"]), None
        if code == "unsupported_media_type":
            content_type = event.headers.get("content-type", "") if event is not None else ""
            message, field = f"the body must be application/json, not {content_type or 'nothing'}", "Content-Type"
        headers: dict[str, str | list[str]] = {k: v for k, v in response.headers.items()
                                               if k.lower() != "content-type"}
        path = (event.context or {}).get("resourcePath") if event is not None else None
        if code == "method_not_allowed" and path in allowed:
            headers = {k: v for k, v in headers.items() if k.lower() != "allow"} | {"Allow": allowed[path]}
        return _json(response.status_code, error_body(code, message, field), headers)

    return middleware
