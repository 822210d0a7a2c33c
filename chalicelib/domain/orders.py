"""Orders, their statuses, the transition table (as data) and lifecycle events."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from .amounts import MAX_BASE_UNITS, min_out_at_cap, min_out_at_price, parse_decimal
from .errors import InvalidOrderTransitionError, UnsupportedOrderTypeError, ValidationError
from .sniper import MAX_DELAY_SLOTS, SniperChecks
from .tokens import Token

__all__ = [
    "CANCELLABLE",
    "DEFAULT_WAIT",
    "MAX_SLIPPAGE_BPS",
    "MAX_WAIT",
    "MIN_SLIPPAGE_BPS",
    "SUPPORTED_TYPES",
    "TERMINAL",
    "TRANSITIONS",
    "WAITING_TYPES",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "OrderType",
    "iso",
    "new_order_id",
    "parse_iso",
    "request_fingerprint",
    "utc_now",
]

MIN_SLIPPAGE_BPS = 1
MAX_SLIPPAGE_BPS = 5000
DEFAULT_WAIT = timedelta(hours=24)  # how long a limit order waits when it names no expiresAt
MAX_WAIT = timedelta(days=30)  # the furthest expiresAt may lie ahead


class OrderStatus(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    ROUTING = "routing"
    BUILDING = "building"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    SNIPER = "sniper"


S = OrderStatus
# The whole state machine. A retry after a transient failure goes back to pending; so does a
# submitted order whose transaction provably can never land (its blockhash expired unseen):
# it is rebuilt with a fresh blockhash, as Solana clients do.
# ``waiting`` belongs to limit and sniper orders (price not reached, pool not live yet): the
# matcher triggers them (``waiting → routing``), and a limit order whose price slipped away
# before its swap rests again (``routing → waiting``). A client cancels an order that has not
# started executing (``pending``/``waiting → cancelled``); a waiting order past its
# ``expiresAt`` ends ``expired``.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.ROUTING, S.WAITING, S.FAILED, S.CANCELLED}),
    S.WAITING: frozenset({S.ROUTING, S.EXPIRED, S.CANCELLED, S.FAILED}),
    S.ROUTING: frozenset({S.BUILDING, S.FAILED, S.PENDING, S.WAITING}),
    S.BUILDING: frozenset({S.SUBMITTED, S.FAILED, S.PENDING}),
    S.SUBMITTED: frozenset({S.CONFIRMED, S.FAILED, S.PENDING}),
    S.CONFIRMED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL: frozenset[OrderStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
CANCELLABLE: frozenset[OrderStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if S.CANCELLED in nxt)
SUPPORTED_TYPES: frozenset[OrderType] = frozenset(OrderType)
WAITING_TYPES: frozenset[OrderType] = frozenset({OrderType.LIMIT, OrderType.SNIPER})  # they rest in ``waiting``


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime) -> str:
    """API.md's timestamps: UTC, millisecond precision, trailing Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """An ``iso`` timestamp (or any ISO 8601 one with a zone) back to an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(data: bytes, length: int) -> str:
    n = int.from_bytes(data, "big")
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_order_id(client_id: str, client_order_id: str | None) -> str:
    """``ord_`` + 26 characters.

    With an idempotency key the id is derived from (client, key), so the same key can only
    ever name one order: creating it is a single conditional write, never read-then-write.
    Without one, the id starts with the time in milliseconds, so ids sort by creation.
    """
    if client_order_id is not None:
        digest = hashlib.sha256(f"{client_id}\x00{client_order_id}".encode()).digest()
        return "ord_" + _b32(digest, 26)
    millis = int(time.time() * 1000).to_bytes(6, "big")
    return "ord_" + _b32(millis, 10) + _b32(secrets.token_bytes(10), 16)


@dataclass(frozen=True)
class OrderEvent:
    """One status an order reached: persisted in its history and pushed to subscribers."""

    order_id: str
    seq: int
    status: OrderStatus
    at: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "status": self.status.value, "at": self.at, "data": self.data}

    @classmethod
    def from_dict(cls, order_id: str, raw: dict[str, Any]) -> OrderEvent:
        return cls(order_id, int(raw["seq"]), OrderStatus(raw["status"]), raw["at"], dict(raw.get("data") or {}))

    def to_message(self) -> dict[str, Any]:
        """API.md's ``order.status`` message."""
        return {
            "type": "order.status",
            "orderId": self.order_id,
            "status": self.status.value,
            "seq": self.seq,
            "at": self.at,
            "data": self.data,
        }


@dataclass
class Order:
    """An order and everything that happened to it.

    ``version`` equals the seq of the latest event: every transition is persisted as a
    conditional write on (status, version), so two workers can never both move an order.
    """

    order_id: str
    client_id: str
    type: OrderType
    token_in: Token
    token_out: Token
    amount_in: int
    slippage_bps: int
    client_order_id: str | None = None
    request_hash: str = ""
    status: OrderStatus = OrderStatus.PENDING
    version: int = 0
    attempts: int = 0
    created_at: str = ""
    updated_at: str = ""
    venue: str | None = None
    quotes: list[dict[str, Any]] = field(default_factory=list)
    amount_out: int | None = None
    min_amount_out: int | None = None
    executed_price: str | None = None
    signature: str | None = None
    last_valid_block_height: int | None = None
    tx: dict[str, Any] | None = None  # the signed transaction, to re-send it unchanged after a crash
    tx_hash: str | None = None
    error: dict[str, Any] | None = None
    history: list[OrderEvent] = field(default_factory=list)
    limit_price: str | None = None
    max_price: str | None = None  # a sniper's cap: most token_in per token_out (canonical decimal)
    expires_at: str | None = None  # when a waiting order ends ``expired`` (``iso``)
    checks: SniperChecks | None = None  # a sniper's safety checks
    delay_slots: int = 0  # a sniper's wait after its pool opens

    @classmethod
    def create(
        cls,
        *,
        client_id: str,
        token_in: Token,
        token_out: Token,
        amount_in: int,
        slippage_bps: int,
        order_type: OrderType = OrderType.MARKET,
        client_order_id: str | None = None,
        request_hash: str = "",
        limit_price: str | None = None,
        max_price: str | None = None,
        expires_at: datetime | None = None,
        checks: SniperChecks | None = None,
        delay_slots: int = 0,
        now: datetime | None = None,
    ) -> Order:
        """Validate and create a pending order (its first event, seq 1, included).

        A limit order needs ``limit_price`` (above zero, least ``token_out`` per ``token_in``); a
        sniper order buys ``token_out`` (a mint, launched or not) with SOL, at most ``max_price``
        (above zero, ``token_in`` per ``token_out``), ``delay_slots`` (0-150) after its pool opens,
        if ``checks`` pass. For both, ``expires_at`` defaults to ``DEFAULT_WAIT`` from now, lies at
        most ``MAX_WAIT`` ahead and never in the past.
        """
        if order_type not in SUPPORTED_TYPES:
            raise UnsupportedOrderTypeError(
                f"{order_type.value} orders are not supported yet; only market orders execute",
                field="type",
            )
        if token_in == token_out:
            raise ValidationError("tokenIn and tokenOut must differ", field="tokenOut")
        if amount_in <= 0:
            raise ValidationError("amount must be greater than zero", field="amount")
        if not MIN_SLIPPAGE_BPS <= slippage_bps <= MAX_SLIPPAGE_BPS:
            raise ValidationError(
                f"slippageBps must be between {MIN_SLIPPAGE_BPS} and {MAX_SLIPPAGE_BPS}",
                field="slippageBps",
            )
        created = now or utc_now()
        expiry: str | None = None
        if order_type is OrderType.LIMIT:
            limit_price = _limit_price(limit_price, amount_in, token_in, token_out)
            expiry = iso(_expiry(expires_at, created))
        if order_type is OrderType.SNIPER:
            if not token_in.is_sol:
                raise ValidationError("a sniper order buys with SOL: tokenIn must be SOL", field="tokenIn")
            max_price = _positive_price(max_price, "maxPrice")
            if not 0 <= delay_slots <= MAX_DELAY_SLOTS:
                raise ValidationError(f"delaySlots must be between 0 and {MAX_DELAY_SLOTS}", field="delaySlots")
            checks = checks or SniperChecks()
            expiry = iso(_expiry(expires_at, created))
        else:
            checks, delay_slots = None, 0
        at = iso(created)
        order = cls(
            order_id=new_order_id(client_id, client_order_id),
            client_id=client_id,
            type=order_type,
            token_in=token_in,
            token_out=token_out,
            amount_in=amount_in,
            slippage_bps=slippage_bps,
            client_order_id=client_order_id,
            request_hash=request_hash,
            status=OrderStatus.PENDING,
            version=1,
            created_at=at,
            updated_at=at,
            limit_price=limit_price,
            max_price=max_price,
            expires_at=expiry,
            checks=checks,
            delay_slots=delay_slots,
        )
        order.history.append(OrderEvent(order.order_id, 1, OrderStatus.PENDING, at, {}))
        return order

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def last_event(self) -> OrderEvent:
        return self.history[-1]

    @property
    def is_cancellable(self) -> bool:
        return self.status in CANCELLABLE

    @property
    def limit(self) -> Decimal | None:
        """A limit order's price as a ``Decimal`` (``None`` for any other order)."""
        return None if self.limit_price is None else Decimal(self.limit_price)

    def required_out(self) -> int:
        """The least ``token_out`` (base units) a limit order accepts: ``ceil(amount · limitPrice)``."""
        if self.limit is None:
            raise ValueError(f"order {self.order_id} has no limit price")
        return min_out_at_price(self.amount_in, self.token_in, self.limit, self.token_out)

    def cap_out(self) -> int:
        """The least ``token_out`` (base units) a sniper accepts: ``ceil(amount / maxPrice)``, so the
        price paid is at most ``maxPrice``. Its token must have launched (decimals known)."""
        if self.max_price is None:
            raise ValueError(f"order {self.order_id} has no price cap")
        return min_out_at_cap(self.amount_in, self.token_in, Decimal(self.max_price), self.token_out)

    def was_triggered(self) -> bool:
        """Whether the order's condition was ever met (a trigger in its history)."""
        return any(isinstance(e.data.get("trigger"), dict) for e in self.history)

    def is_overdue(self, now: datetime) -> bool:
        return self.expires_at is not None and parse_iso(self.expires_at) <= now

    @property
    def trigger(self) -> dict[str, Any] | None:
        """What triggered the order, while it is ``routing`` because the matcher (or its arming)
        found its condition met; ``None`` otherwise (a crashed worker's ``routing``, for one)."""
        if self.status is not OrderStatus.ROUTING or not self.history:
            return None
        trigger = self.last_event.data.get("trigger")
        return trigger if isinstance(trigger, dict) else None

    def can_transition(self, to: OrderStatus) -> bool:
        return to in TRANSITIONS[self.status]

    def transition(
        self, to: OrderStatus, data: dict[str, Any] | None = None, *, now: datetime | None = None
    ) -> OrderEvent:
        """Move to ``to``, bump version/seq and record the event. Raises on an illegal move."""
        if not self.can_transition(to):
            raise InvalidOrderTransitionError(f"{self.status.value} -> {to.value}")
        at = iso(now or utc_now())
        self.version += 1
        self.status = to
        self.updated_at = at
        event = OrderEvent(self.order_id, self.version, to, at, dict(data or {}))
        self.history.append(event)
        return event

    def events_after(self, seq: int) -> list[OrderEvent]:
        return [e for e in self.history if e.seq > seq]


def _positive_price(text: str | None, field: str) -> str:
    if text is None:
        raise ValidationError(f"{field} is required for a sniper order", field=field)
    value = parse_decimal(text, field=field)
    if value <= 0:
        raise ValidationError(f"{field} must be greater than zero", field=field)
    return format(value.normalize(), "f")


def _limit_price(text: str | None, amount_in: int, token_in: Token, token_out: Token) -> str:
    """The limit price, checked and in its canonical form ("160.50" → "160.5")."""
    if text is None:
        raise ValidationError("limitPrice is required for a limit order", field="limitPrice")
    value = parse_decimal(text, field="limitPrice")
    if value <= 0:
        raise ValidationError("limitPrice must be greater than zero", field="limitPrice")
    if amount_in > 0 and min_out_at_price(amount_in, token_in, value, token_out) > MAX_BASE_UNITS:
        raise ValidationError(f"limitPrice asks for more {token_out.symbol} than any balance can hold",
                              field="limitPrice")
    return format(value.normalize(), "f")


def _expiry(expires_at: datetime | None, now: datetime) -> datetime:
    if expires_at is None:
        return now + DEFAULT_WAIT
    if expires_at.tzinfo is None:
        raise ValidationError("expiresAt needs a time zone, e.g. 2026-12-01T00:00:00Z", field="expiresAt")
    if expires_at <= now:
        raise ValidationError(f"expiresAt {iso(expires_at)} is in the past", field="expiresAt")
    if expires_at > now + MAX_WAIT:
        raise ValidationError(f"expiresAt may be at most {MAX_WAIT.days} days ahead", field="expiresAt")
    return expires_at


def request_fingerprint(body: dict[str, Any]) -> str:
    """A stable hash of an order request, to tell a retry from a conflicting reuse of a key."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
