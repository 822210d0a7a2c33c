"""Subscribing a WebSocket connection to an order: a snapshot, then every later status, in order.

Writers only write. A transition appends its event to the order item and bumps ``version``; a
subscription adds the connection to the item's ``subs``. DynamoDB applies writes to one item one
at a time, and the table's stream carries each write's whole new image to the fan-out, which
pushes the events that write added to the ``subs`` *of that same image* (fanout.py). So the
fan-out pushes an event to exactly the connections subscribed *before* the event was written,
and the subscriber has to send everything written before its own subscribing write, itself:

1. claim the subscription, reading the order in the same conditional write: the claim fails if
   the connection already follows the order or another subscription of it is under way, so
   two concurrent subscriptions on one connection give one snapshot and one
   ``already_subscribed``;
2. send the snapshot, or the events after ``afterSeq``, up to the claim's ``version`` V;
3. turn the claim into a subscription (add the connection to ``subs``) *on condition that
   ``version`` is still V*;
4. if the condition fails, a transition slipped in: the failed write returns the item as it is
   now, so send the events after V, set V to the new version and go back to 3.

When step 3 succeeds, every event up to V has been sent by the subscriber, and every event after
V is written after the subscription, so its image lists the connection and the fan-out pushes it.
No gap, no duplicate (but after a fault, a retried push, always with its seq), and seq order
holds on the socket: the subscriber's last push happens before its subscription exists, so
before any push by the fan-out. A terminal order needs no subscription (its claim is refused
and the snapshot is the whole story). Two AWS calls per subscription, as many as a read and a
write; one more per transition that slips in; one for a terminal order.

A claim expires (``CLAIM_SECONDS``, longer than any function's timeout), so a subscription whose
Lambda died half-way does not lock its connection out of the order; a subscription that cannot
deliver its snapshot gives its claim back.

A connection that goes away stays in ``subs`` until the next push to it answers 410, which
removes it (see fanout.py): orders live seconds, so bookkeeping every subscription on the
connection as well would cost two writes per order to save a rare failed push.
"""

from __future__ import annotations

import time
from typing import Any

from ..adapters.notifier import PushResult
from ..adapters.orders_table import AlreadySubscribedError, ClaimLostError
from ..domain import Order
from ..logs import logger as log
from .services import Services
from .views import snapshot_message

__all__ = ["CLAIM_SECONDS", "send", "subscribe", "unsubscribe"]

_MAX_ROUNDS = 20  # an order makes at most a handful of transitions; this bounds a pathological race
CLAIM_SECONDS = 90  # above the longest function timeout (the worker's 60 s)


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

    A connection that already follows the order, or is being subscribed to it, gets an
    ``already_subscribed`` error and nothing else: a second snapshot, or a replay while the
    fan-out pushes to it, would break exactly-once.
    """
    now_ms = int(time.time() * 1000)
    try:
        claim = services.orders.claim_subscription(order_id, client_id, connection_id, now_ms,
                                                   now_ms + CLAIM_SECONDS * 1000)
    except LookupError:
        send(services, connection_id, not_found(order_id))
        return False
    except AlreadySubscribedError:
        send(services, connection_id, already_subscribed(order_id))
        return True
    order, until = claim.order, claim.until_ms
    if after_seq is None:
        delivered = send(services, connection_id, snapshot_message(order))
        cursor = order.version
    else:
        delivered = _send_after(services, connection_id, order, after_seq)
        cursor = max(after_seq, order.version)
    if until is None:  # terminal: nothing live follows, nothing was claimed
        return delivered
    if not delivered:
        _release(services, order_id, connection_id, until)
        return False
    version = order.version
    for _ in range(_MAX_ROUNDS):
        try:
            current = services.orders.complete_subscription(order_id, connection_id, version, until)
        except LookupError:
            send(services, connection_id, not_found(order_id))
            return False
        except ClaimLostError:  # it expired, and a later subscription of this connection took over
            log.warning("subscription outlived its claim", extra={"orderId": order_id, "connectionId": connection_id})
            return False
        if current is None:
            return True
        if not _send_after(services, connection_id, current, cursor):
            _release(services, order_id, connection_id, until)
            return False
        cursor = max(cursor, current.version)
        version = current.version
    log.error("subscription did not settle", extra={"orderId": order_id, "connectionId": connection_id})
    _release(services, order_id, connection_id, until)
    return False


def _release(services: Services, order_id: str, connection_id: str, until: int) -> None:
    try:
        services.orders.release_claim(order_id, connection_id, until)
    except Exception:  # best effort: the claim expires on its own
        log.exception("could not release a subscription's claim",
                      extra={"orderId": order_id, "connectionId": connection_id})


def _send_after(services: Services, connection_id: str, order: Order, seq: int) -> bool:
    return all(send(services, connection_id, e.to_message()) for e in order.events_after(seq))


def unsubscribe(services: Services, connection_id: str, client_id: str, order_id: str) -> None:
    services.orders.unsubscribe(order_id, connection_id)
