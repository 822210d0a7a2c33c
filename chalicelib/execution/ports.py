"""What the executor needs from the outside world, as protocols. Adapters implement them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..domain import Blockhash, DomainError, Order, SignatureStatus, Transaction

__all__ = ["Chain", "OrderConflictError", "OrderStore", "StaleOrderError"]


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


class Chain(Protocol):
    """A Solana cluster as its JSON-RPC API shows it (the simulated one, or a real RPC node).

    Failures are domain errors: ``RpcError`` (transient: ask again), ``BlockhashExpiredError``
    from ``send_transaction`` (the cluster refuses a transaction it has never seen whose
    blockhash is no longer valid), ``SlippageExceededError`` from the send's preflight.
    """

    def get_latest_blockhash(self) -> Blockhash:
        """A blockhash to sign with, and the last block height at which it can land."""
        ...

    def send_transaction(self, tx: Transaction) -> str:
        """Submit a signed transaction; returns its signature. Sending one the cluster has
        already seen is a no-op: the network de-duplicates by signature."""
        ...

    def get_signature_statuses(self, signatures: Sequence[str]) -> list[SignatureStatus | None]:
        """One entry per signature: ``None`` while the transaction has not landed (or never
        will), else its slot, confirmation status, error and fills. Everything due to land
        by now has landed (or been dropped) before the answer is read, so a ``None`` read
        after a block height above the transaction's ``lastValidBlockHeight`` means it can
        never land."""
        ...

    def get_block_height(self) -> int: ...
