"""The WebSocket API as an AsyncAPI 3.0 document, from the same models as the REST contract.

From the engine's point of view: it *receives* the client's actions and *sends* the order's
messages. One channel (the socket at ``/``, with ``apiKey`` and an optional ``orderId`` in the
query), one operation per message.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.api.contract import SERVER_MESSAGES
from chalicelib.api.models import CLIENT_ACTIONS
from chalicelib.api.openapi import referenced_schemas

__all__ = ["document"]

REF = "#/components/schemas/{model}"

EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "SubscribeAction": [{"action": "subscribe", "orderId": "ord_01jd5x3k9q7v8w2m4n6p8r0t2y"},
                        {"action": "subscribe", "orderId": "ord_01jd5x3k9q7v8w2m4n6p8r0t2y", "afterSeq": 3}],
    "UnsubscribeAction": [{"action": "unsubscribe", "orderId": "ord_01jd5x3k9q7v8w2m4n6p8r0t2y"}],
    "ExecuteAction": [{"action": "execute", "order": {"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1.5",
                                                       "slippageBps": 50}}],
    "PingAction": [{"action": "ping"}],
    "CancelAction": [{"action": "cancel", "orderId": "ord_01jd5x3k9q7v8w2m4n6p8r0t2y"}],
    "OrderStatusMessage": [{"type": "order.status", "orderId": "ord_01jd5x3k9q7v8w2m4n6p8r0t2y",
                            "status": "confirmed", "seq": 5, "at": "2026-11-25T17:46:51.821Z",
                            "data": {"txHash": "5RsrQe23Lb6o…", "amountOut": "228.969391",
                                     "executedPrice": "152.646260666666667", "venue": "raydium"}}],
    "ErrorMessage": [{"type": "error", "code": "already_subscribed",
                      "message": "this connection already receives the events of ord_…", "orderId": "ord_…"},
                     {"type": "error", "code": "not_cancellable", "status": 409, "field": "orderId",
                      "message": "order ord_… is submitted; only pending or waiting orders can be cancelled",
                      "orderId": "ord_…"}],
    "PongMessage": [{"type": "pong"}],
}


def _name(model: type[BaseModel]) -> str:
    return model.__name__


def _operation_id(prefix: str, model: type[BaseModel]) -> str:
    name = _name(model).removesuffix("Action").removesuffix("Message")
    return prefix + name


def document() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*CLIENT_ACTIONS, *SERVER_MESSAGES]
    _refs, defs = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    messages: dict[str, Any] = {}
    for model in models:
        message: dict[str, Any] = {
            "name": _name(model),
            "title": _name(model),
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=_name(model))},
        }
        if model.__doc__ and not model.__doc__.startswith(("Usage docs", "A base class")):
            message["summary"] = " ".join(model.__doc__.split())
        if _name(model) in EXAMPLES:
            message["examples"] = [{"payload": p} for p in EXAMPLES[_name(model)]]
        messages[_name(model)] = message
    channel_messages = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    operations: dict[str, Any] = {}
    for model in CLIENT_ACTIONS:
        operations[_operation_id("receive", model)] = {
            "action": "receive",
            "channel": {"$ref": "#/channels/orders"},
            "messages": [{"$ref": f"#/channels/orders/messages/{_name(model)}"}],
        }
    for model in SERVER_MESSAGES:
        operations[_operation_id("send", model)] = {
            "action": "send",
            "channel": {"$ref": "#/channels/orders"},
            "messages": [{"$ref": f"#/channels/orders/messages/{_name(model)}"}],
        }
    operations["receivePing"]["reply"] = {
        "channel": {"$ref": "#/channels/orders"},
        "messages": [{"$ref": "#/channels/orders/messages/PongMessage"}],
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Order execution engine: WebSocket API",
            "version": "1.0.0",
            "description": (
                "Order lifecycle events in real time. Connect with `?apiKey=…` (a bad key is refused at the "
                "handshake), optionally `&orderId=…` to subscribe at once. A subscriber first gets a snapshot, "
                "then every later status in seq order, none lost; after a fault a status may come twice with "
                "the same seq, and a client drops a seq it has already seen. A client that reconnects "
                "subscribes with `afterSeq`. API Gateway closes sockets after 10 idle minutes and after 2 "
                "hours; a message above 128 KB closes the socket with 1009."),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:8001", "protocol": "ws", "description": "The local stack (`make run`)."},
            "aws": {"host": "{apiId}.execute-api.{region}.amazonaws.com", "pathname": "/{stage}", "protocol": "wss",
                    "description": "API Gateway's WebSocket API of a deployed stage.",
                    "variables": {"apiId": {"description": "The WebSocket API's id."},
                                  "region": {"default": "us-east-1"},
                                  "stage": {"default": "dev", "enum": ["dev", "prod"]}}},
        },
        "channels": {
            "orders": {
                "address": "/",
                "title": "An authenticated socket",
                "messages": channel_messages,
                "bindings": {"ws": {"query": {
                    "type": "object",
                    "required": ["apiKey"],
                    "properties": {
                        "apiKey": {"type": "string", "description": "An API key (as `x-api-key` on REST)."},
                        "orderId": {"type": "string", "description": "Subscribe to this order at once."},
                        "afterSeq": {"type": "string", "pattern": "^[0-9]+$",
                                     "description": "With orderId: replay the statuses after this seq."},
                    },
                }}},
            },
        },
        "operations": operations,
        "components": {"messages": messages, "schemas": referenced_schemas(defs.get("$defs", {}), messages)},
    }
