"""Lambda's SQS event source mapping, locally: polls each queue of ``app.event_sources`` and
calls its handler with Lambda-shaped records.

As the mapping does:

- up to ``batch_size`` records per invocation, gathered for up to
  ``maximum_batching_window_in_seconds``; at most ``maximum_concurrency`` invocations in
  flight per queue (10 when unset); a queue is polled only while a slot is free;
- the handler is the Chalice-wrapped entry point (what Lambda calls), given the event dict and
  a context;
- partial batch responses: no response, no ``batchItemFailures`` or an empty list is full
  success; listed ``itemIdentifier`` s are kept and every other record deleted; a missing,
  empty or unknown ``itemIdentifier``, a malformed response, an error or a timeout fails the
  whole batch. Nothing else is done to a failed record: its visibility is whatever the queue
  or the handler made it.
- a warning when the queue's visibility timeout is below 6 × the function's timeout.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .event_sources import EventSourcePoller, failed_item_identifiers

__all__ = ["DEFAULT_MAX_CONCURRENCY", "SqsPoller", "lambda_record"]

log = logging.getLogger("devstack.sqs")

DEFAULT_MAX_CONCURRENCY = 10


def lambda_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS ``ReceiveMessage`` message as Lambda's event source mapping delivers it."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: str(value) for name, value in (message.get("Attributes") or {}).items()},
        "messageAttributes": {name: _message_attribute(value)
                              for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute


@dataclass
class _Source:
    name: str
    queue_url: str
    queue_arn: str
    batch_size: int
    window: float
    concurrency: int
    timeout: float
    memory_mb: int
    slots: threading.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = threading.Semaphore(self.concurrency)


class SqsPoller(EventSourcePoller):
    """Feeds each SQS event source of a Chalice app from its queue until ``stop()``.

    ``wait_seconds`` is the long-poll wait, short so that stopping is quick.
    """

    thread_prefix = "devstack-sqs"
    log = log

    def __init__(self, app: Any, sqs_client: Any, *, region: str = "us-east-1", stage: str = "local",
                 function_timeouts: Mapping[str, float] | None = None,
                 function_memory: Mapping[str, int] | None = None, wait_seconds: int = 1,
                 default_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> None:
        super().__init__(app, region=region, stage=stage, function_timeouts=function_timeouts,
                         function_memory=function_memory)
        self._sqs = sqs_client
        self._wait_seconds = wait_seconds
        self._default_concurrency = default_concurrency
        self._sources: list[_Source] = []
        self._join_timeout = wait_seconds + 10

    @property
    def sources(self) -> list[str]:
        """The handler names being fed."""
        return [source.name for source in self._sources]

    def _start(self) -> None:
        from chalice.app import SQSEventConfig

        self._sources = [self._resolve(config) for config in self.app.event_sources
                         if isinstance(config, SQSEventConfig)]
        for source in self._sources:
            executor = self._pool(source.concurrency, source.name)
            self._spawn(f"poll-{source.name}", self._poll, source, executor)
            log.info("polling %s for %s (batch %d, concurrency %d)", source.queue_url, source.name,
                     source.batch_size, source.concurrency)

    # -- setup ----------------------------------------------------------------------------------
    def _resolve(self, config: Any) -> _Source:
        if config.queue:
            url = self._sqs.get_queue_url(QueueName=config.queue)["QueueUrl"]
        else:
            *_, account, name = str(config.queue_arn).split(":")
            url = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn", "VisibilityTimeout"])
        attributes = attributes.get("Attributes", {})
        timeout = self.timeout_of(config.name)
        visibility = int(attributes.get("VisibilityTimeout", 30))
        if visibility < 6 * timeout:
            log.warning("queue %s: visibility timeout %d s is below 6 x the timeout of %s (%g s); "
                        "a slow batch may be delivered twice", url, visibility, config.name, timeout)
        return _Source(
            name=config.name,
            queue_url=url,
            queue_arn=attributes.get("QueueArn", config.queue_arn or ""),
            batch_size=max(1, int(config.batch_size)),
            window=float(config.maximum_batching_window_in_seconds or 0),
            concurrency=int(config.maximum_concurrency or self._default_concurrency),
            timeout=timeout,
            memory_mb=self.memory_of(config.name),
        )

    # -- polling --------------------------------------------------------------------------------
    def _poll(self, source: _Source, executor: ThreadPoolExecutor) -> None:
        while not self._stopping.is_set():
            if not source.slots.acquire(timeout=0.2):
                continue
            try:
                messages = self._receive(source)
            except Exception:
                source.slots.release()
                log.exception("receiving from %s failed", source.queue_url)
                self._stopping.wait(1)
                continue
            if not messages:
                source.slots.release()
                continue
            executor.submit(self._invoke, source, messages)

    def _receive(self, source: _Source) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + source.window
        wait = self._wait_seconds
        while len(messages) < source.batch_size and not self._stopping.is_set():
            response = self._sqs.receive_message(
                QueueUrl=source.queue_url,
                MaxNumberOfMessages=min(10, source.batch_size - len(messages)),
                WaitTimeSeconds=wait,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            messages.extend(received)
            remaining = deadline - time.monotonic()
            if not messages or remaining <= 0:
                break
            wait = int(min(self._wait_seconds, remaining))
            if wait == 0 and not received:
                self._stopping.wait(min(remaining, 0.1))
        return messages

    def _invoke(self, source: _Source, messages: list[dict[str, Any]]) -> None:
        try:
            records = [lambda_record(m, source.queue_arn, self._region) for m in messages]
            invocation = self.invoke(source.name, {"Records": records})
            if invocation.error is not None:
                log.error("%s failed; the batch of %d stays in the queue", source.name, len(records),
                          exc_info=invocation.error)
                return
            if invocation.timed_out:
                log.warning("%s ran %.1f s, past its %g s timeout; the batch stays in the queue",
                            source.name, invocation.elapsed, source.timeout)
                return
            failed = failed_item_identifiers(invocation.response, [record["messageId"] for record in records])
            if failed is None:
                log.warning("%s returned an invalid batch response; the batch of %d stays in the queue: %r",
                            source.name, len(records), invocation.response)
                return
            self._delete(source, [r["receiptHandle"] for r in records if r["messageId"] not in failed])
        except Exception:
            log.exception("invoking %s failed", source.name)
        finally:
            source.slots.release()

    def _delete(self, source: _Source, receipt_handles: list[str]) -> None:
        for start in range(0, len(receipt_handles), 10):
            chunk = receipt_handles[start:start + 10]
            response = self._sqs.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                log.warning("could not delete a message from %s: %s", source.queue_url, failure.get("Message"))
