"""What API Gateway itself answers, in the contract's error shape: one definition for AWS and the local stack.

API Gateway answers some requests without calling the app: an unknown path (its
``MISSING_AUTHENTICATION_TOKEN``, a 403 by default), a body over its 10 MB limit, throttling.
Its *gateway responses* replace those answers. ``infra.package`` writes these into the REST
API's OpenAPI definition (``x-amazon-apigateway-gateway-responses``), and the local REST
server answers the same way from the same table (``render``).

Templates of gateway responses get simple ``$context`` substitution only (no VTL), and
``$context.error.messageString`` is already a quoted JSON string, so each body stays valid JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["GATEWAY_RESPONSES", "GatewayResponse", "openapi_extension", "render"]

MESSAGE = "$context.error.messageString"


@dataclass(frozen=True)
class GatewayResponse:
    code: str
    message: str  # a JSON string literal, or MESSAGE
    status: int | None = None  # None: API Gateway's own status for that response type
    field: str | None = None

    def template(self) -> str:
        body = f'"code":{json.dumps(self.code)},"message":{self.message}'
        if self.field:
            body += f',"field":{json.dumps(self.field)}'
        return '{"error":{' + body + "}}"


GATEWAY_RESPONSES: dict[str, GatewayResponse] = {
    "MISSING_AUTHENTICATION_TOKEN": GatewayResponse(
        "not_found", json.dumps("no route matches this path"), status=404),
    "UNSUPPORTED_MEDIA_TYPE": GatewayResponse(
        "unsupported_media_type", json.dumps("the body must be application/json"), status=415,
        field="Content-Type"),
    "REQUEST_TOO_LARGE": GatewayResponse("payload_too_large", MESSAGE, status=413, field="body"),
    "THROTTLED": GatewayResponse("rate_limited", MESSAGE, status=429),
    "DEFAULT_4XX": GatewayResponse("bad_request", MESSAGE),
    "DEFAULT_5XX": GatewayResponse("internal_error", MESSAGE),
}


def openapi_extension() -> dict[str, Any]:
    """``x-amazon-apigateway-gateway-responses`` for the REST API's OpenAPI definition."""
    responses: dict[str, Any] = {}
    for response_type, response in GATEWAY_RESPONSES.items():
        entry: dict[str, Any] = {
            "responseParameters": {"gatewayresponse.header.Content-Type": "'application/json'"},
            "responseTemplates": {"application/json": response.template()},
        }
        if response.status is not None:
            entry["statusCode"] = str(response.status)
        responses[response_type] = entry
    return responses


def render(response_type: str, status: int, message: str) -> tuple[int, bytes]:
    """The status and body API Gateway sends for ``response_type`` (whose default status is
    ``status``), with ``message`` as its error message."""
    response = GATEWAY_RESPONSES.get(response_type) or GATEWAY_RESPONSES["DEFAULT_5XX" if status >= 500
                                                                          else "DEFAULT_4XX"]
    body = response.template().replace(MESSAGE, json.dumps(message))
    return response.status or status, body.encode()
