"""The orders queue: send an order id for execution; back a failed message off. The market events
queue: publish what changed in the market, for the matcher."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_DELAY_SECONDS", "MarketEventsQueue", "OrdersQueue"]

_BATCH = 10  # SendMessageBatch's most entries
MAX_DELAY_SECONDS = 900  # SQS's most DelaySeconds


class _Queue:
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

    def probe(self) -> None:
        """One call that only a reachable queue answers (health checks)."""
        self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])

    def send(self, payload: dict[str, Any]) -> str:
        resp = self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(payload, separators=(",", ":")))
        return str(resp["MessageId"])


class OrdersQueue(_Queue):
    def send_orders(self, order_ids: Sequence[str]) -> None:
        """``{"orderId"}`` for each, ten to a request; raises if any could not be sent."""
        for start in range(0, len(order_ids), _BATCH):
            chunk = order_ids[start:start + _BATCH]
            if len(chunk) == 1:
                self.send({"orderId": chunk[0]})
                continue
            resp = self._sqs.send_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps({"orderId": order_id}, separators=(",", ":"))}
                for i, order_id in enumerate(chunk)])
            failed = resp.get("Failed") or []
            if failed:
                raise RuntimeError(f"{len(failed)} of {len(chunk)} orders not queued: {failed[0].get('Message')}")

    def set_visibility(self, receipt_handle: str, seconds: int) -> None:
        """Exponential back-off: the message reappears after ``seconds`` (SQS caps at 12 h)."""
        self._sqs.change_message_visibility(
            QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, min(seconds, 43_200))
        )


class MarketEventsQueue(_Queue):
    """Where the market's changes go when orders wait on them; the matcher Lambda reads it."""

    def publish(self, event: Mapping[str, Any], delay_seconds: int = 0) -> None:
        """``event`` for the matcher; with ``delay_seconds`` (0-900, SQS's DelaySeconds) it becomes
        visible only then: a pool's opening is published when the pool is launched."""
        if delay_seconds <= 0:
            self.send(dict(event))
            return
        self._sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(dict(event), separators=(",", ":")),
                               DelaySeconds=min(int(delay_seconds), MAX_DELAY_SECONDS))
