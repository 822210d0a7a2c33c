"""Pushing to WebSocket connections: one message (``send``), and the fan-out of the orders
table's stream (``deliver``).

The fan-out gets the stream's records in order. Each record is the new image of one write to an
order item: the events that write added are the ``history`` entries with ``seq > evFrom``, and
the connections to push them to are the same image's ``subs`` (see orders_table.py). Because
the subscribers come from the very image that carries the event, a subscription either precedes
a transition's write, and gets the event from here, or follows it, and sent the event itself
(see subscriptions.py). Writers only write: nothing is pushed from the execution path, and an
event saved is an event delivered, whoever crashes after the save.

Delivery of one batch of records:

- a connection's pushes go in record order, one at a time, so each order's events reach it in
  seq order;
- connections are served in parallel: a slow one holds back only itself;
- 410 Gone: the connection is forgotten and dropped from the orders it followed in this batch;
- any other failure stops pushes to that connection for the rest of the batch, and the earliest
  such record is reported in ``batchItemFailures``. Lambda retries the batch from that record,
  in order; connections that had already received part of it may see a status again, always
  with its seq (API.md: a client drops a seq it has already seen);
- so does a connection still being served when the invocation nears its timeout (a slow but
  answering client): the batch ends in time and the rest is retried, instead of the whole
  invocation timing out and every connection getting the batch again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..adapters.connections_table import ConnectionsTable
from ..adapters.dynamo import from_item
from ..adapters.notifier import Notifier, PushResult
from ..adapters.orders_table import OrdersTable, event_from_stored
from ..logs import keep_log_keys, log_keys
from ..logs import logger as log

__all__ = ["Fanout", "NewEvents", "new_events"]

MAX_PARALLEL_CONNECTIONS = 32  # the push client's connection pool (adapters/aws.py)


@dataclass(frozen=True)
class NewEvents:
    """What one stream record asks the fan-out to push, and to whom."""

    sequence_number: str
    order_id: str
    messages: tuple[dict[str, Any], ...]
    subscribers: tuple[str, ...]


def new_events(record: Mapping[str, Any]) -> NewEvents | None:
    """The events a stream record's new image added, for its subscribers; None when there is
    nothing to push (no image, no new event, nobody subscribed)."""
    change = record.get("dynamodb") or {}
    image = change.get("NewImage")
    if not image:
        return None  # a REMOVE
    item = from_item(image)
    if "evFrom" not in item or "history" not in item:
        # Not a write of ours: e.g. the key-only INSERT that moto's stream emits before the
        # record of an update_item that creates its item.
        return None
    subscribers = tuple(item.get("subs") or ())
    if not subscribers:
        return None
    order_id = str(item["orderId"])
    first_new = int(item["evFrom"])
    events = sorted((e for e in (event_from_stored(order_id, raw) for raw in item["history"]) if e.seq > first_new),
                    key=lambda e: e.seq)
    if not events:
        return None
    return NewEvents(str(change["SequenceNumber"]), order_id, tuple(e.to_message() for e in events), subscribers)


class Fanout:
    def __init__(self, notifier: Notifier, orders: OrdersTable, connections: ConnectionsTable,
                 max_parallel: int = MAX_PARALLEL_CONNECTIONS) -> None:
        self._notifier = notifier
        self._orders = orders
        self._connections = connections
        self._max_parallel = max_parallel

    def send(self, connection_id: str, message: dict[str, Any], order_id: str | None = None) -> str:
        """Push one message; a connection that is gone is forgotten (and dropped from ``order_id``)."""
        result = self._notifier.push(connection_id, message)
        if result == PushResult.GONE:
            self.forget(connection_id, *([order_id] if order_id else []))
        return result

    def forget(self, connection_id: str, *order_ids: str) -> None:
        """Drop a gone connection: its item, and its place among the orders' subscribers."""
        try:
            self._connections.delete(connection_id)
            for order_id in order_ids:
                self._orders.unsubscribe(order_id, connection_id)
        except Exception:  # cleanup is best effort; the TTL removes what this misses
            log.exception("cleanup of a gone connection failed",
                          extra={"connectionId": connection_id, "orderIds": list(order_ids)})

    def deliver(self, records: Sequence[Mapping[str, Any]], deadline: float | None = None) -> list[str]:
        """Push the new events of a batch of stream records (see the module's docstring).

        ``deadline`` (``time.monotonic()``) is when no push may start any more. Returns the
        sequence number of the earliest record to retry, or an empty list when every push was
        delivered or its connection is gone.
        """
        lanes: dict[str, list[tuple[int, NewEvents]]] = {}
        for index, record in enumerate(records):
            found = new_events(record)
            if found is None:
                continue
            for connection_id in found.subscribers:
                lanes.setdefault(connection_id, []).append((index, found))
        if not lanes:
            return []
        if len(lanes) == 1:
            failed = [self._serve(*next(iter(lanes.items())), deadline)]
        else:
            with ThreadPoolExecutor(max_workers=min(len(lanes), self._max_parallel),
                                    thread_name_prefix="fanout") as pool:
                serve = keep_log_keys(self._serve)  # the invocation's keys, in each connection's thread
                failed = list(pool.map(lambda lane: serve(lane[0], lane[1], deadline), lanes.items()))
        retry = [index for index in failed if index is not None]
        if not retry:
            return []
        return [str(records[min(retry)]["dynamodb"]["SequenceNumber"])]

    def _serve(self, connection_id: str, lane: list[tuple[int, NewEvents]], deadline: float | None) -> int | None:
        """One connection's pushes, in record order; the index of the record to retry, if any."""
        for index, found in lane:
            for message in found.messages:
                if deadline is not None and time.monotonic() >= deadline:
                    log.warning("out of time; the stream will retry from this record",
                                extra={"orderId": found.order_id, "seq": message.get("seq"),
                                       "connectionId": connection_id, "sequenceNumber": found.sequence_number})
                    return index
                with log_keys(orderId=found.order_id):  # on the notifier's lines about this push
                    result = self._notifier.push(connection_id, message)
                if result == PushResult.SENT:
                    continue
                if result == PushResult.GONE:
                    self.forget(connection_id, *dict.fromkeys(f.order_id for _, f in lane))
                    return None
                log.warning("push failed; the stream will retry from this record",
                            extra={"orderId": found.order_id, "seq": message.get("seq"),
                                   "connectionId": connection_id, "sequenceNumber": found.sequence_number})
                return index
        return None
