"""The Lambda on the orders table's stream: the fan-out of order events (see fanout.py).

The stream's ARN is a setting (``ORDERS_TABLE_STREAM_ARN``): the package wires the table's real
stream; locally the default names the table, whose current stream the local stack's poller follows.
Partial batch responses: the earliest record with an undelivered push is reported in
``batchItemFailures`` and Lambda retries from it, in order (the package turns on
``ReportBatchItemFailures``, splitting a batch on a function error, and a retry limit).
"""

from __future__ import annotations

import time
from typing import Any, cast

from chalice.app import Blueprint, DynamoDBEvent

from ..config import get_settings
from .services import get_services

__all__ = ["STREAM_BATCH_SIZE", "bp", "fan_out_order_events"]

bp = Blueprint(__name__)
_settings = get_settings()

STREAM_BATCH_SIZE = 100  # Lambda's default for DynamoDB streams
# No push starts this close to the function's timeout: a push takes at most two attempts of
# 1 s to connect and 2 s to read (PUSH_CLIENT_CONFIG), and the response must still go out.
PUSH_MARGIN_SECONDS = 8.0


@bp.on_dynamodb_record(stream_arn=_settings.orders_stream_arn(), batch_size=STREAM_BATCH_SIZE,
                       starting_position="LATEST")
def fan_out_order_events(event: DynamoDBEvent) -> dict[str, Any]:
    context = cast(Any, event.context)
    deadline = None
    if context is not None:
        remaining = context.get_remaining_time_in_millis() / 1000
        deadline = time.monotonic() + max(remaining - PUSH_MARGIN_SECONDS, remaining / 2)
    retry_from = get_services().stream_fanout.deliver(event.to_dict()["Records"], deadline)
    return {"batchItemFailures": [{"itemIdentifier": sequence_number} for sequence_number in retry_from]}
