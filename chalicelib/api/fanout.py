"""The event publisher: pushes each new event to the order's subscribers.

A connection that answers 410 (gone) is forgotten in both tables; any other push error is
logged and ignored, because a client's socket must never fail an order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..adapters.connections_table import ConnectionsTable
from ..adapters.notifier import Notifier, PushResult
from ..adapters.orders_table import OrdersTable
from ..domain import Order, OrderEvent

__all__ = ["Fanout"]

log = logging.getLogger("order_engine.fanout")


class Fanout:
    def __init__(self, notifier: Notifier, orders: OrdersTable, connections: ConnectionsTable) -> None:
        self._notifier = notifier
        self._orders = orders
        self._connections = connections

    def publish(self, order: Order, events: Sequence[OrderEvent], subscribers: Sequence[str]) -> None:
        for connection_id in subscribers:
            for event in events:
                if self.send(connection_id, event.to_message(), order.order_id) == PushResult.GONE:
                    break

    def send(self, connection_id: str, message: dict[str, Any], order_id: str | None = None) -> str:
        """Push one message; a connection that is gone is forgotten (and dropped from ``order_id``)."""
        result = self._notifier.push(connection_id, message)
        if result == PushResult.GONE:
            self.forget(connection_id, order_id)
        return result

    def forget(self, connection_id: str, order_id: str | None = None) -> None:
        """Drop a gone connection: its item, and its place among the order's subscribers."""
        try:
            self._connections.delete(connection_id)
            if order_id:
                self._orders.unsubscribe(order_id, connection_id)
        except Exception:  # cleanup is best effort; the TTL removes what this misses
            log.exception("cleanup of %s failed", connection_id)
