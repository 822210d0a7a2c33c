"""Cancelling an order, for REST (``DELETE /api/orders/{id}``) and WebSocket (``cancel``) alike.

One conditional write on the version read: ``pending``/``waiting → cancelled`` (``data.by``). A
cancel racing the worker's claim, a trigger or the expiry sweep either wins whole (the others'
writes are then refused) or finds the order moved and answers ``not_cancellable``.
"""

from __future__ import annotations

from ..domain import Order, OrderStatus, OrderType
from ..execution.ports import StaleOrderError
from ..logs import logger as log
from .errors import ApiError
from .services import Services

__all__ = ["cancel_order"]

_ATTEMPTS = 5  # re-reads when a write that keeps it cancellable (a re-arm) slips in between


def cancel_order(services: Services, client_id: str, order_id: str) -> Order:
    """The order, now ``cancelled``; 404 for an unknown or another client's order, 409
    ``not_cancellable`` once it has left ``pending``/``waiting``."""
    for _ in range(_ATTEMPTS):
        order = services.orders.get(order_id) if order_id.startswith("ord_") else None
        if order is None or order.client_id != client_id:  # another client's order does not exist for you
            raise ApiError(404, "not_found", f"order {order_id} not found", field="orderId")
        if not order.is_cancellable:
            raise ApiError(409, "not_cancellable",
                           f"order {order_id} is {order.status.value}; only pending or waiting orders can be "
                           "cancelled", field="orderId")
        expected, was = order.version, order.status
        order.transition(OrderStatus.CANCELLED, {"by": "client"})
        try:
            services.orders.save(order, expected)
        except StaleOrderError:
            continue  # it moved: read it again and decide again
        _forget(services, order, was, expected)
        return order
    raise ApiError(409, "not_cancellable", f"order {order_id} keeps moving; ask again", field="orderId")


def _forget(services: Services, order: Order, was: OrderStatus, version: int) -> None:
    """The caches: the trigger book's entry and the client's active set."""
    try:
        if was is OrderStatus.WAITING and order.type is OrderType.LIMIT:
            services.book.remove(order, version)
        if was is OrderStatus.WAITING and order.type is OrderType.SNIPER:
            services.sniper_book.remove(order, version)
        services.state.remove_active(order.client_id, order.order_id)
    except Exception:  # caches: a stale book entry costs one refused write, the active set heals on read
        log.exception("could not clear the caches of a cancelled order",
                      extra={"orderId": order.order_id, "clientId": order.client_id})
