"""What the executor needs from the outside world, as protocols. Adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from ..domain import (
    Blockhash,
    DomainError,
    Order,
    OrderEvent,
    OrderStatus,
    PoolLaunch,
    SignatureStatus,
    Token,
    Transaction,
)

__all__ = [
    "BookEntry",
    "Chain",
    "Launches",
    "MarketEventSink",
    "OrderConflictError",
    "OrderQueue",
    "OrderStore",
    "SniperBook",
    "SniperEntry",
    "StaleOrderError",
    "TransitionRefused",
    "TriggerBook",
    "WaitingOrder",
    "WaitingOrders",
]


class StaleOrderError(DomainError):
    """The order changed since it was read: someone else moved it. The caller re-reads or stops.

    ``expected_version`` is the version the refused write was conditioned on (None: not known)."""

    code = "stale_order"

    def __init__(self, message: str, expected_version: int | None = None) -> None:
        super().__init__(message)
        self.expected_version = expected_version


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


# -- orders that wait ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookEntry:
    """A waiting limit order as the trigger book holds it: enough to confirm it with a quote and
    to move it with one conditional write, without reading the order."""

    order_id: str
    version: int  # the seq of its ``waiting`` event: the write that triggers it expects this version
    amount_in: int
    required_out: int  # ceil(amount · limitPrice), base units of token_out
    expires_ms: int  # epoch ms
    limit_price: Decimal
    ref: str = ""  # the book's own handle on the entry


@dataclass(frozen=True)
class WaitingOrder:
    """An order in the orders table's index of waiting orders: ``waiting``, or ``routing`` once
    triggered until a worker picks it up."""

    order_id: str
    client_id: str
    status: OrderStatus
    version: int
    type: str
    token_in: Token
    token_out: Token
    amount_in: int
    limit_price: str | None
    expires_at: str  # iso
    delay_slots: int = 0  # a sniper's


@dataclass(frozen=True)
class TransitionRefused:
    """A conditional write that did not apply, and the order as it stood (None: no such order)."""

    status: OrderStatus | None
    version: int


class TriggerBook(Protocol):
    """Waiting limit orders by pair and direction, ordered by limit price. A cache of the orders
    table's index of waiting orders: entries may be stale (the conditional write that moves an
    order is the guard), and a book whose ``ready`` marker is gone is rebuilt before use."""

    def add(self, order: Order, version: int) -> None:
        """Add ``order`` as it waits at ``version`` (before the write that makes it wait)."""
        ...

    def remove(self, order: Order, version: int) -> None: ...

    def forget(self, order: WaitingOrder) -> None:
        """Remove the entry of an order the ``waiting`` index describes."""
        ...

    def discard(self, token_in: Token, token_out: Token, entries: Sequence[BookEntry]) -> None: ...

    def candidates(self, token_in: Token, token_out: Token, best_price: Decimal) -> list[BookEntry]:
        """The entries whose limit price is at most ``best_price``: the only ones a trade can fill now."""
        ...

    def watched(self, pairs: Sequence[tuple[Token, Token]]) -> list[tuple[Token, Token]]:
        """Of these (ordered) pairs, the ones with waiting orders, every one when the book needs
        rebuilding: in one round trip."""
        ...

    def ready(self) -> bool: ...

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int:
        """Fill the book from the truth and mark it ready; returns how many entries it holds."""
        ...


class WaitingOrders(Protocol):
    """The orders table's side of waiting: its index, and transitions written without a read."""

    def waiting(self, order_type: str, due_by: str | None = None) -> Iterator[WaitingOrder]:
        """Orders of ``order_type`` in the index (waiting, or triggered and not yet picked up),
        soonest first; with ``due_by`` (iso) only those due by then."""
        ...

    def transition_unread(self, order_id: str, expected_version: int, expected_status: OrderStatus,
                          event: OrderEvent, *, fields: Mapping[str, Any] | None = None,
                          expires_before: str | None = None, expires_after: str | None = None,
                          ) -> TransitionRefused | None:
        """Append ``event`` (seq = expected_version + 1) and move the order to its status iff it
        is still ``expected_status`` at ``expected_version`` (and, when given, its expiresAt is
        before / after the given iso time): one conditional write. None when it applied."""
        ...


@dataclass(frozen=True)
class SniperEntry:
    """A waiting sniper order as the sniper book holds it: enough to trigger it with one conditional
    write when its mint's pool opens (plus its delay), without reading the order."""

    order_id: str
    version: int  # the seq of its ``waiting`` event
    expires_ms: int  # epoch ms
    delay_slots: int
    ref: str = ""  # the book's own handle on the entry


class SniperBook(Protocol):
    """Waiting sniper orders by the mint they watch. A cache of the orders table's ``waiting``
    index, like ``TriggerBook``: entries may be stale, and a book whose ``ready`` marker is gone
    is rebuilt before use."""

    def add(self, order: Order, version: int) -> None:
        """Add ``order`` as it waits at ``version`` (before the write that makes it wait)."""
        ...

    def remove(self, order: Order, version: int) -> None: ...

    def forget(self, order: WaitingOrder) -> None: ...

    def discard(self, mint: str, entries: Sequence[SniperEntry]) -> None: ...

    def entries(self, mint: str) -> list[SniperEntry]:
        """Every order watching ``mint``, the shortest delay first."""
        ...

    def watched(self, mint: str) -> bool:
        """Whether orders watch ``mint`` (also when the book needs rebuilding): one round trip."""
        ...

    def ready(self) -> bool: ...

    def rebuild(self, orders: Iterable[WaitingOrder]) -> int: ...


class Launches(Protocol):
    """What the chain says about new tokens: a mint's pool and authorities (``None`` while the mint
    has not launched), the SOL a pool holds now, and the current slot."""

    @property
    def slot_ms(self) -> int:
        """How long a slot lasts, in ms (400 on Solana)."""
        ...

    def launch_of(self, mint: str) -> PoolLaunch | None: ...

    def pool_lamports(self, launch: PoolLaunch) -> int: ...

    def slot(self) -> int: ...


class OrderQueue(Protocol):
    def send_orders(self, order_ids: Sequence[str]) -> None:
        """Queue these orders for the worker (batched)."""
        ...


class MarketEventSink(Protocol):
    def publish(self, event: Mapping[str, Any], delay_seconds: int = 0) -> None:
        """Send ``event`` to the matcher, visible after ``delay_seconds`` (SQS's DelaySeconds)."""
        ...
