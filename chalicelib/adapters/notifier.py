"""Pushes messages to WebSocket connections through API Gateway's management API.

The endpoint comes from settings: the local gateway or LocalStack (``WS_MANAGEMENT_ENDPOINT``)
or ``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`` on AWS.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from ..logs import logger as log

__all__ = ["Notifier", "PushResult"]


class PushResult:
    SENT = "sent"
    GONE = "gone"  # 410: the connection no longer exists; forget it
    FAILED = "failed"  # anything else: logged, never fatal


class Notifier:
    def __init__(self, client: Any) -> None:
        self._api = client

    def push(self, connection_id: str, message: dict[str, Any]) -> str:
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            self._api.post_to_connection(ConnectionId=connection_id, Data=data)
            return PushResult.SENT
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error.get("Code") == "GoneException" or status == 410:
                return PushResult.GONE
            log.warning("push failed", extra={"connectionId": connection_id, "code": error.get("Code"),
                                              "status": status})
            return PushResult.FAILED
        except Exception as exc:  # a network error must never fail an order
            log.warning("push failed", extra={"connectionId": connection_id, "error": repr(exc)})
            return PushResult.FAILED

    def is_connected(self, connection_id: str) -> bool:
        """GET @connections/{id}: False while the handshake is not complete, or once it is gone."""
        try:
            self._api.get_connection(ConnectionId=connection_id)
            return True
        except ClientError:
            return False
