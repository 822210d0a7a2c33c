"""What the executor needs from the outside world, as protocols. Adapters implement them."""

from __future__ import annotations

from typing import Protocol

from ..domain import DomainError, Order

__all__ = ["OrderConflictError", "OrderStore", "StaleOrderError"]


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

    def save(self, order: Order, expected_version: int) -> None:
        """Persist the order's new events and fields iff the stored version is ``expected_version``.

        The write records which of its events are new, so whatever follows the store's changes
        (the orders table's stream) can deliver them; the executor pushes nothing itself.
        Raises StaleOrderError.
        """
        ...
