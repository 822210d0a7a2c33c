"""A Postman collection (v2.1) and environment, generated from the OpenAPI document.

One request per operation (one per example body where an operation has several), in an order a
person can run top to bottom: health, quotes, orders (the order ids POST returns are saved in
collection variables and reused by the requests that need them), then the documents. Each
request carries a test script that checks the status code against the statuses the document
lists as success, and the body's shape.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

__all__ = ["collection", "environment"]

SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
VARIABLES = {"baseUrl": "http://127.0.0.1:8000", "wsUrl": "ws://127.0.0.1:8001", "apiKey": "local-dev-key"}
# Which saved id a path parameter takes, per operation (default: the last order submitted).
PATH_IDS = {"cancelOrder": "limitOrderId"}
# Request bodies that take a value an earlier request saved: the sniper order snipes the token the
# simulation folder (run before the orders) launched.
BODY_VARIABLES = {("executeOrder", "sniper"): {"tokenOut": "{{launchedMint}}"}}

WEBSOCKET_HELP = """\
## Watching orders live (WebSocket)

Collections v2.1 cannot hold WebSocket requests, so open one by hand: in Postman choose
**New → WebSocket**, enter `{{wsUrl}}/?apiKey={{apiKey}}&orderId={{orderId}}` and **Connect**.
The first message is an `order.snapshot`, then one `order.status` per step
(`pending → routing → building → submitted → confirmed | failed`). On an open socket you can
also send:

```json
{"action": "subscribe", "orderId": "ord_…"}
{"action": "subscribe", "orderId": "ord_…", "afterSeq": 3}
{"action": "execute", "order": {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5"}}
{"action": "cancel", "orderId": "ord_…"}
{"action": "ping"}
```

The messages are described in `docs/asyncapi.yaml`.
"""


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "order-engine:" + ":".join(parts)))


def _success(operation: dict[str, Any]) -> list[int]:
    return sorted(int(code) for code in operation["responses"] if code.isdigit() and code.startswith("2"))


def _test_script(op_id: str, operation: dict[str, Any], example: str | None) -> list[str]:
    codes = _success(operation)
    lines = [
        f'pm.test("status is one of {codes}", function () {{',
        f"    pm.expect(pm.response.code).to.be.oneOf({json.dumps(codes)});",
        "});",
    ]
    media = (operation["responses"].get(str(codes[0]), {}).get("content") or {}) if codes else {}
    if "application/json" in media:
        lines += [
            'pm.test("body is JSON", function () { pm.response.to.be.json; });',
        ]
    if op_id == "executeOrder":
        lines += [
            "const accepted = pm.response.json();",
            'pm.test("an order id and a WebSocket URL", function () {',
            '    pm.expect(accepted.orderId).to.match(/^ord_/);',
            '    pm.expect(accepted.wsUrl).to.include(accepted.orderId);',
            "});",
            'pm.collectionVariables.set("orderId", accepted.orderId);',
        ]
        if example:
            lines.append(f'pm.collectionVariables.set("{example}OrderId", accepted.orderId);')
    if op_id == "createLaunch":
        lines += [
            "const launched = pm.response.json();",
            'pm.test("a new mint and its pool, opening at a slot", function () {',
            "    pm.expect(launched.mint).to.match(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/);",
            "    pm.expect(launched.openSlot).to.be.a('number');",
            "});",
            'pm.collectionVariables.set("launchedMint", launched.mint);',
        ]
    if op_id == "cancelOrder":
        lines += [
            'pm.test("the limit order, now cancelled by its client", function () {',
            '    const order = pm.response.json();',
            f'    pm.expect(order.orderId).to.eql(pm.variables.get("{PATH_IDS[op_id]}"));',
            '    pm.expect(order.status).to.eql("cancelled");',
            '    pm.expect(order.history[order.history.length - 1].data.by).to.eql("client");',
            "});",
        ]
    if op_id == "getOrder":
        lines += [
            'pm.test("the order asked for, with its history", function () {',
            '    const order = pm.response.json();',
            '    pm.expect(order.orderId).to.eql(pm.variables.get("orderId"));',
            '    pm.expect(order.history[0].status).to.eql("pending");',
            "});",
        ]
    return lines


def _url(path: str, operation: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
    saved = PATH_IDS.get(operation["operationId"], "orderId")
    examples = {p["name"]: (p["schema"].get("examples") or [""])[0]
                for p in operation.get("parameters", []) if p["in"] == "path"}

    def segment(seg: str) -> str:
        if not seg.startswith("{"):
            return seg
        name = seg.strip("{}")
        return "{{" + saved + "}}" if name == "orderId" else str(examples.get(name, ""))

    segments = [segment(seg) for seg in path.strip("/").split("/")]
    raw = "{{baseUrl}}/" + "/".join(segments)
    url: dict[str, Any] = {"raw": raw, "host": ["{{baseUrl}}"], "path": segments}
    if query:
        url["raw"] += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        url["query"] = [{"key": k, "value": v} for k, v in query.items()]
    return url


def _query_example(operation: dict[str, Any]) -> dict[str, str]:
    """Required query parameters, with the example (or default) of each."""
    out: dict[str, str] = {}
    for param in operation.get("parameters", []):
        if param["in"] != "query" or not param.get("required"):
            continue
        schema = param.get("schema", {})
        value = (schema.get("examples") or [schema.get("default", "")])[0]
        out[param["name"]] = str(value)
    return out


def _request(path: str, method: str, operation: dict[str, Any], example: str | None,
             body: Any | None) -> dict[str, Any]:
    op_id = operation["operationId"]
    request: dict[str, Any] = {
        "method": method.upper(),
        "header": [],
        "url": _url(path, operation, _query_example(operation)),
        "description": operation.get("description", operation["summary"]),
    }
    if not operation.get("security"):
        request["auth"] = {"type": "noauth"}
    if body is not None:
        body = {**body, **BODY_VARIABLES.get((op_id, example or ""), {})}
        request["header"].append({"key": "Content-Type", "value": "application/json"})
        request["body"] = {"mode": "raw", "raw": json.dumps(body, indent=2), "options": {"raw": {"language": "json"}}}
    name = operation["summary"] + (f" ({example})" if example else "")
    return {
        "id": _stable_id(op_id, example or ""),
        "name": name,
        "request": request,
        "event": [{"listen": "test", "script": {"type": "text/javascript",
                                                "exec": _test_script(op_id, operation, example)}}],
    }


def collection(openapi: dict[str, Any]) -> dict[str, Any]:
    folders: dict[str, list[dict[str, Any]]] = {}
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            tag = (operation.get("tags") or ["other"])[0]
            content = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {})
            examples = content.get("examples") or {}
            if examples:
                for name, example in examples.items():
                    folders.setdefault(tag, []).append(_request(path, method, operation, name, example["value"]))
            else:
                folders.setdefault(tag, []).append(_request(path, method, operation, None, None))
    order = {"operations": 0, "market": 1, "simulation": 2, "orders": 3, "dashboard": 4}
    return {
        "info": {
            "_postman_id": _stable_id("collection"),
            "name": openapi["info"]["title"],
            "description": openapi["info"]["description"] + "\n\n" + WEBSOCKET_HELP,
            "schema": SCHEMA,
        },
        "auth": {"type": "apikey", "apikey": [
            {"key": "key", "value": "x-api-key", "type": "string"},
            {"key": "value", "value": "{{apiKey}}", "type": "string"},
            {"key": "in", "value": "header", "type": "string"},
        ]},
        "variable": [{"key": k, "value": v, "type": "string"} for k, v in VARIABLES.items()]
        + [{"key": "orderId", "value": "", "type": "string"}, {"key": "launchedMint", "value": "", "type": "string"}],
        "item": [{"name": tag, "item": items}
                 for tag, items in sorted(folders.items(), key=lambda kv: order.get(kv[0], 9))],
    }


def environment() -> dict[str, Any]:
    return {
        "id": _stable_id("environment", "local"),
        "name": "order-engine local stack",
        "values": [{"key": k, "value": v, "type": "default", "enabled": True} for k, v in VARIABLES.items()],
        "_postman_variable_scope": "environment",
    }
