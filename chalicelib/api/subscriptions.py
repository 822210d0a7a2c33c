"""Subscribing a WebSocket connection to an order: a snapshot, then every later status once, in order.

Two writers touch an order item: the worker (each transition appends an event and bumps
``version``) and a subscriber (adds its connection id to ``subs``). DynamoDB applies writes to
one item one at a time, and every transition's write returns the ``subs`` it committed
against, so the worker pushes an event to exactly the connections subscribed *before* that
event was written. The subscriber therefore has to send everything written before its own
write, and nothing after:

1. read the order (strongly consistent) and send the snapshot, or the events after
   ``afterSeq``, up to that read's ``version`` V;
2. add the connection to ``subs`` *on condition that ``version`` is still V*;
3. if the condition fails, a transition slipped in: the failed write returns the item as it
   is now, so send the events after V, set V to the new version and go back to 2.

When step 2 succeeds, every event up to V has been sent by the subscriber, and every event
after V will be sent by the worker, whose write (and so whose push) comes after the
subscription's. No gap, no duplicate, and seq order holds on the socket: the subscriber's
last push happens before the subscription exists, so before any push by the worker. A
terminal order needs no subscription at all.

A connection that goes away stays in ``subs`` until the next push to it answers 410, which
removes it (see fanout.py): orders live seconds, so bookkeeping every subscription on the
connection as well would cost two writes per order to save a rare failed push.
"""

from __future__ import annotations

import logging
from typing import Any

from ..adapters.notifier import PushResult
from ..adapters.orders_table import AlreadySubscribedError
from ..domain import Order
from .services import Services
from .views import snapshot_message

__all__ = ["send", "subscribe", "unsubscribe"]

log = logging.getLogger("order_engine.subscriptions")
_MAX_ROUNDS = 20  # an order makes at most a handful of transitions; this bounds a pathological race


def send(services: Services, connection_id: str, message: dict[str, Any]) -> bool:
    """Push one message; a gone connection is forgotten. Returns whether it was delivered."""
    return services.fanout.send(connection_id, message) == PushResult.SENT


def not_found(order_id: str) -> dict[str, Any]:
    return {"type": "error", "code": "not_found", "message": f"order {order_id} not found", "orderId": order_id}


def already_subscribed(order_id: str) -> dict[str, Any]:
    return {"type": "error", "code": "already_subscribed",
            "message": f"this connection already receives the events of {order_id}", "orderId": order_id}


def subscribe(services: Services, connection_id: str, client_id: str, order_id: str,
              after_seq: int | None = None) -> bool:
    """Run the protocol above. ``after_seq`` replays missed events instead of a snapshot.

    A connection that already follows the order gets an ``already_subscribed`` error and
    nothing else: replaying to it while the worker pushes to it would break exactly-once.
    """
    found = services.orders.get_with_subscribers(order_id)
    if found is None or found[0].client_id != client_id:
        send(services, connection_id, not_found(order_id))
        return False
    order, subscribers = found
    if connection_id in subscribers:
        send(services, connection_id, already_subscribed(order_id))
        return True
    if after_seq is None:
        if not send(services, connection_id, snapshot_message(order)):
            return False
        cursor = order.version
    else:
        cursor = after_seq
        if not _send_after(services, connection_id, order, cursor):
            return False
        cursor = max(cursor, order.version)
    if order.is_terminal:
        return True
    version = order.version
    for _ in range(_MAX_ROUNDS):
        try:
            current = services.orders.subscribe_if_at(order_id, client_id, connection_id, version)
        except LookupError:
            send(services, connection_id, not_found(order_id))
            return False
        except AlreadySubscribedError:  # a concurrent subscribe of this connection won the race
            return True
        if current is None:
            return True
        if not _send_after(services, connection_id, current, cursor):
            return False
        cursor = max(cursor, current.version)
        version = current.version
        if current.is_terminal:
            return True
    log.error("subscription of %s to %s did not settle", connection_id, order_id)
    return False


def _send_after(services: Services, connection_id: str, order: Order, seq: int) -> bool:
    return all(send(services, connection_id, e.to_message()) for e in order.events_after(seq))


def unsubscribe(services: Services, connection_id: str, client_id: str, order_id: str) -> None:
    services.orders.unsubscribe(order_id, connection_id)
