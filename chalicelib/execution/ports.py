"""What the executor needs from the outside world, as protocols. Adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..domain import DomainError, Order, OrderEvent

__all__ = ["EventPublisher", "OrderConflictError", "OrderStore", "StaleOrderError"]


class StaleOrderError(DomainError):
    """The order changed since it was read: someone else moved it. The caller re-reads or stops."""

    code = "stale_order"


class OrderConflictError(DomainError):
    """An idempotency key reused with a different request body."""

    code = "idempotency_conflict"


class OrderStore(Protocol):
    def get(self, order_id: str) -> Order | None: ...

    def create(self, order: Order) -> tuple[Order, bool]:
        """Store a new order atomically; if its id exists, return (existing, False)."""
        ...

    def save(self, order: Order, expected_version: int) -> Sequence[str]:
        """Persist the order's new events and fields iff the stored version is ``expected_version``.

        Returns the connection ids subscribed to the order, read in the same write, so the
        caller can push the new events to exactly those subscribers. Raises StaleOrderError.
        """
        ...


class EventPublisher(Protocol):
    def publish(self, order: Order, events: Sequence[OrderEvent], subscribers: Sequence[str]) -> None:
        """Push events to subscribers. Never raises: a push failure must not fail an order."""
        ...
