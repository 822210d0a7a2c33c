"""SQS-triggered Lambdas: the orders worker and the dead-letter handler.

Partial batch responses through Powertools' ``BatchProcessor``: a record that fails is
reported in ``batchItemFailures`` and only it is retried; no exception escapes for one bad
record. The records of a batch run concurrently (one order's 2–3 s of confirmation must not
hold the others back); the event source mapping's maximum concurrency bounds the batches.

A transient failure sets the message's visibility to ``base · 2^(attempt−1)`` seconds
before reporting it, so SQS itself schedules the retry with exponential back-off; after
``maxReceiveCount`` (3) receives the redrive policy moves what is still failing to the DLQ.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from chalice.app import Blueprint, SQSEvent

from ..config import get_settings
from ..domain import Order
from ..execution.executor import OutcomeKind
from ..logs import lambda_context_keys, log_keys
from ..logs import logger as log
from .services import Services, get_services
from .subscriptions import subscribe

__all__ = ["RetryLaterError", "bp", "handle_order_record", "process_dead_letters", "process_orders"]

bp = Blueprint(__name__)
_settings = get_settings()

BATCH_SIZE = 10
MAX_CONCURRENCY = 10


class RetryLaterError(Exception):
    """Marks a record as failed so SQS redelivers it (after the back-off already applied)."""


class ConcurrentBatchProcessor(BatchProcessor):
    """Powertools' BatchProcessor, with the records of one batch processed in parallel."""

    def process(self) -> list[tuple[Any, ...]]:
        records = list(self.records)
        if len(records) <= 1:
            return [self._process_record(r) for r in records]
        with ThreadPoolExecutor(max_workers=min(len(records), BATCH_SIZE)) as pool:
            return list(pool.map(self._process_record, records))


def _receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count)
    except (TypeError, ValueError, KeyError):
        return 1


def handle_order_record(services: Services, record: SQSRecord) -> None:
    body = json.loads(record.body)
    attempt = _receive_count(record)
    if body.get("kind") == "subscribe":
        _handle_subscribe_job(services, body, record, attempt)
        return
    order_id = body["orderId"]
    try:
        outcome = services.executor.execute(order_id, attempt, _carried(services, body, attempt))
    except Exception as exc:
        # Our own fault (a bug, DynamoDB unavailable): log it with the order id, back off, retry;
        # on the last attempt persist the reason so the order does not wait for the DLQ.
        log.exception("worker error", extra={"orderId": order_id, "attempt": attempt})
        if attempt >= services.settings.max_attempts:
            try:
                services.executor.fail_stuck(
                    order_id, "internal_error",
                    f"the worker failed unexpectedly ({type(exc).__name__}) on every attempt; "
                    "its log lines with this order id have the details")
                return
            except Exception:
                log.exception("could not fail order", extra={"orderId": order_id})
        _back_off(services, record, services.executor.backoff(attempt))
        raise
    if outcome.kind is OutcomeKind.RETRY:
        _back_off(services, record, outcome.delay_seconds)
        raise RetryLaterError(f"{order_id}: {outcome.reason}; retry in {outcome.delay_seconds}s")


def _carried(services: Services, body: dict[str, Any], attempt: int) -> Order | None:
    """The order intake put in the message, on its first delivery only: a redelivery reads the
    table (an earlier attempt moved the order). A snapshot that cannot be read is ignored."""
    snapshot = body.get("order")
    if attempt > 1 or not isinstance(snapshot, dict) or snapshot.get("orderId") != body["orderId"]:
        return None
    try:
        return services.orders.from_snapshot(snapshot)
    except Exception:
        log.warning("unreadable order in the message; reading the table", extra={"orderId": body["orderId"]})
        return None


def _back_off(services: Services, record: SQSRecord, seconds: int) -> None:
    try:
        services.queue.set_visibility(record.receipt_handle, seconds)
    except Exception:
        log.exception("could not set the visibility of a message", extra={"messageId": record.message_id})


def _handle_subscribe_job(services: Services, job: dict[str, Any], record: SQSRecord, attempt: int) -> None:
    """A ``?orderId=`` subscription from ``$connect``, run once the socket is open."""
    connection_id = job["connectionId"]
    if services.connections.get(connection_id) is None:
        return  # refused or already gone: nothing to do
    ready = services.notifier.is_connected(connection_id)
    if not ready:
        if attempt >= services.settings.max_attempts:
            return
        _back_off(services, record, 1)
        raise RetryLaterError(f"connection {connection_id} not open yet")
    subscribe(services, connection_id, job["clientId"], job["orderId"], job.get("afterSeq"))


def _record_log_keys(record: SQSRecord, lambda_context: Any) -> dict[str, Any]:
    """The keys of a record's log lines: its invocation's, and the order (and client) it is about."""
    try:
        body = json.loads(record.body)
    except ValueError:
        body = None
    about = {k: body.get(k) for k in ("orderId", "clientId")} if isinstance(body, dict) else {}
    return {**lambda_context_keys(lambda_context), **about, "messageId": record.message_id}


def _order_handler(record: SQSRecord, lambda_context: Any = None) -> None:
    # Records run in threads of their own: each gets its own keys, and leaves none behind.
    with log_keys(**_record_log_keys(record, lambda_context)):
        handle_order_record(get_services(), record)


def _dead_letter_handler(record: SQSRecord, lambda_context: Any = None) -> None:
    with log_keys(**_record_log_keys(record, lambda_context)):
        _handle_dead_letter(record)


def _handle_dead_letter(record: SQSRecord) -> None:
    body = json.loads(record.body)
    order_id = body.get("orderId")
    if not order_id or body.get("kind") == "subscribe":
        return  # a subscription that never found its socket open: nothing to fail
    services = get_services()
    outcome = services.executor.fail_stuck(
        order_id, "retries_exhausted", "the order failed every attempt and was moved to the dead-letter queue"
    )
    log.error("dead-lettered order", extra={"orderId": order_id, "outcome": outcome.kind.value,
                                            "reason": outcome.reason, "retryInSeconds": outcome.delay_seconds or None})
    if outcome.kind is OutcomeKind.RETRY:
        # The chain cannot tell yet how the order's transaction ended: ask again as soon as it can
        # (its blockhash expired), not after the queue's whole visibility timeout.
        try:
            services.dead_letters.set_visibility(record.receipt_handle, outcome.delay_seconds)
        except Exception:
            log.exception("could not time the dead letter's retry", extra={"orderId": order_id})
        raise RetryLaterError(f"{order_id}: {outcome.reason}; asked again in {outcome.delay_seconds}s")


@bp.on_sqs_message(queue=_settings.orders_queue, batch_size=BATCH_SIZE, maximum_concurrency=MAX_CONCURRENCY)
def process_orders(event: SQSEvent) -> dict[str, Any]:
    get_services().warm()  # the records' threads share one engine
    processor = ConcurrentBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event.to_dict(), record_handler=_order_handler,
                                         processor=processor, context=cast(Any, event.context)))


@bp.on_sqs_message(queue=_settings.orders_dlq, batch_size=BATCH_SIZE)
def process_dead_letters(event: SQSEvent) -> dict[str, Any]:
    # Concurrently, like the worker: each record may wait a few seconds for its order's landing.
    processor = ConcurrentBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event.to_dict(), record_handler=_dead_letter_handler,
                                         processor=processor, context=cast(Any, event.context)))
