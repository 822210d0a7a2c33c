"""The orders queue: send an order id for execution; back a failed message off."""

from __future__ import annotations

import json
import threading
from typing import Any

__all__ = ["OrdersQueue"]


class OrdersQueue:
    def __init__(self, client: Any, queue_name: str) -> None:
        self._sqs = client
        self._name = queue_name
        self._url: str | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Resolved once per process (one GetQueueUrl per container, not per order)."""
        if self._url is None:
            with self._lock:
                if self._url is None:
                    self._url = self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url

    def send(self, payload: dict[str, Any]) -> str:
        resp = self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(payload, separators=(",", ":")))
        return str(resp["MessageId"])

    def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Exponential back-off: the message reappears after ``seconds`` (SQS caps at 12 h)."""
        self._sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )
