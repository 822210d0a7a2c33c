"""Drives one order through ``pending → routing → building → submitted → confirmed | failed``.

At most once, whatever the queue does: SQS delivers at least once and a worker may die
anywhere, so

* every transition is a conditional write on the version the executor read
  (``StaleOrderError`` means another worker moved the order: stop, do nothing);
* the transaction is built and signed, and its signature persisted (``submitted``),
  *before* it is sent. A redelivered order that is ``submitted`` is reconciled: the
  executor asks the chain for the signature's status and, if the chain never saw it,
  re-sends the very same signed transaction, which the chain de-duplicates by signature.
  A swap can therefore land once at most;
* an order found in ``routing`` or ``building`` belongs to a worker that died before
  sending anything (a live worker holds the message invisible), so it goes back to
  ``pending`` and starts again;
* a terminal order is acknowledged and ignored.

Waiting for a landing reads the block height *before* the signature's status. The chain lands
(or drops) everything due before it answers, and a transaction lands only while its blockhash
is valid, so "status unknown, and the height read before it is above ``lastValidBlockHeight``"
proves the transaction can never land: the order goes back to ``pending`` (``submitted →
pending``) and is retried with a new transaction and a fresh blockhash, as Solana clients do.
Nothing else fails a submitted order but the chain's word, so a ``failed`` order never has a
swap that lands later.

Errors are classified: transient ones (``retryable``) put the order back to ``pending``
and ask the caller to retry after ``base · 2^(attempt−1)`` seconds, until the last attempt,
which fails the order with the reason; permanent ones fail it at once.

A ``submitted`` order is the exception: its transaction may be in flight, so it fails only on
the chain's word (an on-chain error), or once its transaction provably can never land and no
attempt is left. Any other transient error keeps it ``submitted`` and asks for a retry, however
many attempts there were; ``fail_stuck`` (the dead-letter path) reconciles it with the chain
before anything else.
One invocation waits at most ``max_confirm_wait_seconds`` for a landing, well inside the
worker's timeout; a longer wait becomes a retry.

Limit orders (see ``execution/triggers.py`` for the matcher):

* a ``pending`` limit order is *armed*: a full-size quote of every venue, then ``pending →
  waiting`` (data: ``limitPrice``, ``expiresAt``, ``bestPrice``) with its entry added to the
  trigger book *before* that write, so the matcher can never miss it; if the best quote already
  meets the limit, it triggers at once (``waiting → routing``) and executes in this invocation;
* a ``routing`` limit order whose last event is a trigger was moved there by the matcher: it
  continues from ``routing`` (re-quoted; if the full-size quote no longer meets the limit it rests
  again, ``routing → waiting``), where any other order found in ``routing`` belongs to a crashed
  worker and restarts from ``pending``;
* the swap's ``minAmountOut`` is at least ``ceil(amount · limitPrice)``, so the limit holds on
  chain; a swap refused or failed for slippage never landed, so the order goes back to
  ``pending`` and is armed again, instead of failing;
* a ``waiting`` order delivered again (a worker died between arming and triggering at once, or a
  duplicate message) is checked once more and otherwise left to wait.

Sniper orders (the matcher's side is in ``execution/triggers.py``):

* a ``pending`` sniper is *armed*: its entry goes into the sniper book, then ``pending → waiting``
  (data: ``watchMint``, ``maxPrice``, ``expiresAt``, ``checks``, ``delaySlots``). Then it looks at
  its mint: a launch made before that write may have published its opening while nobody watched,
  so if the mint has launched the order publishes the opening itself, or, when the pool is open
  and the delay over already, triggers at once (``waiting → routing``, ``cause`` "armed");
* a triggered sniper runs its checks first (mint and freeze authorities renounced, LP burned, the
  pool's SOL): a failing one ends it ``failed`` (``checks_failed``, naming each); then it quotes,
  and a price above ``maxPrice`` ends it ``failed`` (``price_cap_exceeded``): launched pools only
  move by trades, and at their open only up, as snipers buy, so a missed entry does not come back
  by waiting (a limit order on the now trading mint waits for a price). The swap's
  ``minAmountOut`` is at least ``ceil(amount / maxPrice)``, so the cap holds on chain;
* a sniper's swap refused or failed for slippage (other snipers' swaps landed first) never landed:
  it goes back to ``pending`` and straight to ``routing`` again with its trigger (its pool is
  open), quoting the pool as it is now, at most ``max_attempts`` swaps in all; so does a retry
  after a transient failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ..domain import (
    BlockhashExpiredError,
    ChecksFailedError,
    ConfirmationPendingError,
    ExecutionError,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    PermanentExecutionError,
    PriceCapExceededError,
    Route,
    RouteLeg,
    SignatureStatus,
    SlippageExceededError,
    SniperChecks,
    Transaction,
    TransientExecutionError,
    describe_transaction_error,
    price_string,
    to_decimal_string,
)
from ..domain.clock import Clock
from ..logs import log_keys
from ..logs import logger as log
from ..routing.router import Router
from .ports import Chain, Launches, MarketEventSink, OrderStore, SniperBook, StaleOrderError, TriggerBook
from .transactions import build_transaction, transaction_from_dict, transaction_to_dict
from .triggers import MAX_OPENING_WAIT_SECONDS, pool_created, publish_opening

__all__ = ["Executor", "Outcome", "OutcomeKind"]

SLOT_SECONDS = 0.4  # Solana's target slot time
BLOCKHASH_LIFETIME_SECONDS = 60  # 150 blocks: how long a transaction may wait to land
UNDECIDABLE_RETRY_SECONDS = 10  # when even the block height cannot be read
DEAD_LETTER_WAIT_SECONDS = 5.0  # the dead-letter path's wait for a landing, well inside its 10 s timeout
FEE_PAYER = "EngineFeePayer1111111111111111111111111111"


class OutcomeKind(StrEnum):
    DONE = "done"  # terminal now: acknowledge the message
    RETRY = "retry"  # transient failure: keep the message, retry after ``delay_seconds``
    IGNORED = "ignored"  # nothing to do (unknown, terminal, or moved by another worker)


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    order: Order | None = None
    delay_seconds: int = 0
    reason: str = ""


class _StuckError(PermanentExecutionError):
    """Why ``fail_stuck`` failed an order: the caller's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Executor:
    def __init__(
        self,
        store: OrderStore,
        router: Router,
        chain: Chain,
        clock: Clock,
        *,
        max_attempts: int = 3,
        retry_base_seconds: int = 2,
        confirm_poll_seconds: float = 0.2,
        max_confirm_wait_seconds: float = 20.0,
        dead_letter_wait_seconds: float = DEAD_LETTER_WAIT_SECONDS,
        on_terminal: Callable[[Order], None] | None = None,
        book: TriggerBook | None = None,
        sniper_book: SniperBook | None = None,
        launches: Launches | None = None,
        events: MarketEventSink | None = None,
    ) -> None:
        self._store = store
        self._router = router
        self._chain = chain
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_base = retry_base_seconds
        self._poll = confirm_poll_seconds
        self._max_wait = max_confirm_wait_seconds
        self._dead_letter_wait = dead_letter_wait_seconds
        self._on_terminal = on_terminal
        self._book = book
        self._sniper_book = sniper_book
        self._launches = launches
        self._events = events

    # -- entry point -------------------------------------------------------------------------
    def execute(self, order_id: str, receive_count: int = 1, carried: Order | None = None) -> Outcome:
        """Run (or resume) one order. Never raises for an order-level failure.

        ``carried``: the order as its message carries it (intake's snapshot of a new order), used
        instead of reading the table. Every transition is conditional on the version it moves from,
        so a snapshot that is no longer current only costs a refused write: then the order is read
        and run as it stands, as if nothing had been carried.
        """
        if carried is not None and carried.order_id == order_id and not carried.is_terminal:
            outcome = self._execute(carried, receive_count, carried_version=carried.version)
            if outcome is not None:
                return outcome
            log.info("carried order was stale; reading it",
                     extra={"orderId": order_id, "clientId": carried.client_id})
        order = self._store.get(order_id)
        if order is None:
            log.warning("order not found", extra={"orderId": order_id})
            return Outcome(OutcomeKind.IGNORED, reason="not_found")
        if order.is_terminal:
            log.info("duplicate delivery of a terminal order ignored",
                     extra={"orderId": order_id, "clientId": order.client_id, "status": order.status.value})
            return Outcome(OutcomeKind.IGNORED, order, reason="terminal")
        return self._execute(order, receive_count) or Outcome(OutcomeKind.IGNORED, reason="stale")

    def _execute(self, order: Order, receive_count: int, carried_version: int | None = None) -> Outcome | None:
        """``execute`` of an order in hand; None when it was carried and its very first write was
        refused (the snapshot was stale: nothing was written, nothing sent)."""
        order_id = order.order_id
        try:
            # The route's line and every later one of this order carry its client, until it returns.
            with log_keys(clientId=order.client_id):
                try:
                    if order.status is OrderStatus.SUBMITTED:
                        return self._reconcile(order)
                    return self._run(order, receive_count)
                except ExecutionError as exc:
                    return self._handle_failure(order, exc, receive_count)
        except StaleOrderError as stale:
            if carried_version is not None and stale.expected_version == carried_version:
                return None
            log.info("order moved by another worker; stopping",
                     extra={"orderId": order_id, "clientId": order.client_id})
            return Outcome(OutcomeKind.IGNORED, reason="stale")

    # -- the happy path ----------------------------------------------------------------------
    def _run(self, order: Order, receive_count: int) -> Outcome:
        if order.type is OrderType.LIMIT:
            return self._run_limit(order, receive_count)
        if order.type is OrderType.SNIPER:
            return self._run_sniper(order, receive_count)
        if order.status in (OrderStatus.ROUTING, OrderStatus.BUILDING):
            # A worker died mid-flight before sending anything: start this attempt afresh.
            self._move(order, OrderStatus.PENDING, {"attempt": receive_count, "resumed": True})
        order.attempts += 1
        try:
            route = self._router.route(order.token_in, order.token_out, order.amount_in, order.slippage_bps)
        except ExecutionError as exc:
            # Record that routing was tried before failing or retrying.
            self._move(order, OrderStatus.ROUTING, {"quotes": []})
            raise exc
        order.quotes = [q.to_data() for q in route.quotes]
        # Not written yet: ``routing`` and ``building`` go in one conditional write (both events,
        # in seq order, in one image of the stream), unless building fails first.
        unsaved_from = order.version
        order.transition(OrderStatus.ROUTING, {"quotes": order.quotes, "rejected": list(route.rejected)})
        return self._execute_route(order, route, unsaved_from)

    def _execute_route(self, order: Order, route: Route, unsaved_from: int | None = None) -> Outcome:
        """From ``routing`` with the route chosen: build, persist the signature, send, confirm.

        ``unsaved_from``: the order's ``routing`` event is not written yet, and the stored order is
        at this version; the ``building`` write carries both events."""
        try:
            tx = self._build(order, route)
        except Exception:
            if unsaved_from is not None:
                self._save(order, unsaved_from)  # record that routing happened, then fail
            raise
        expected = order.version if unsaved_from is None else unsaved_from
        order.transition(OrderStatus.BUILDING, {
            "venue": order.venue,
            "minAmountOut": to_decimal_string(route.min_amount_out, order.token_out),
            "wrapSol": route.wrap_sol,
            "unwrapSol": route.unwrap_sol,
            "expectedAmountOut": to_decimal_string(route.amount_out, order.token_out),
        })
        self._save(order, expected)

        order.signature = tx.signature
        order.tx = transaction_to_dict(tx)
        order.last_valid_block_height = tx.recent_blockhash.last_valid_block_height
        # Persist the signature BEFORE sending: a crash after this line is reconciled, never re-swapped.
        self._move(order, OrderStatus.SUBMITTED, {
            "signature": tx.signature,
            "lastValidBlockHeight": order.last_valid_block_height,
        })
        return self._send_and_confirm(order, tx)

    # -- limit orders --------------------------------------------------------------------------
    def _run_limit(self, order: Order, receive_count: int) -> Outcome:
        if order.trigger is not None:
            return self._execute_triggered(order)
        if order.status in (OrderStatus.ROUTING, OrderStatus.BUILDING):
            # A worker died mid-flight before sending anything: arm the order afresh.
            self._move(order, OrderStatus.PENDING, {"attempt": receive_count, "resumed": True})
        return self._arm(order)

    def _arm(self, order: Order) -> Outcome:
        """A pending limit order starts waiting (or triggers at once); a waiting one is checked again."""
        route = self._router.route(order.token_in, order.token_out, order.amount_in, order.slippage_bps)
        best_price = price_string(order.amount_in, order.token_in, route.amount_out, order.token_out)
        meets = route.amount_out >= order.required_out() and not order.is_overdue(self._now())
        if order.status is OrderStatus.PENDING:
            waiting_at = order.version + 1
            if not meets:
                self._book_add(order, waiting_at)  # before the write: once it waits, the matcher finds it
            try:
                self._move(order, OrderStatus.WAITING, {"limitPrice": order.limit_price,
                                                        "expiresAt": order.expires_at, "bestPrice": best_price})
            except StaleOrderError:
                if not meets:  # cancelled meanwhile: it will never wait at that version
                    self._book_remove(order, waiting_at)
                raise
        elif not meets:
            self._book_add(order, order.version)  # a redelivery: make sure the matcher knows it
        if not meets:
            return Outcome(OutcomeKind.DONE, order, reason="waiting")
        order.attempts += 1
        order.quotes = [q.to_data() for q in route.quotes]
        self._move(order, OrderStatus.ROUTING, {
            "trigger": {"kind": "price", "price": best_price, "limitPrice": order.limit_price,
                        "slot": self._chain.get_block_height(), "cause": "armed"},
            "quotes": order.quotes,
        })
        return self._execute_route(order, self._holding_limit(order, route))

    def _execute_triggered(self, order: Order) -> Outcome:
        """The matcher moved the order to ``routing``: quote again, then swap or rest again."""
        order.attempts += 1
        route = self._router.route(order.token_in, order.token_out, order.amount_in, order.slippage_bps)
        order.quotes = [q.to_data() for q in route.quotes]
        if route.amount_out < order.required_out():
            best_price = price_string(order.amount_in, order.token_in, route.amount_out, order.token_out)
            self._rest_again(order, OrderStatus.WAITING, {"limitPrice": order.limit_price,
                                                          "expiresAt": order.expires_at, "bestPrice": best_price,
                                                          "slipped": True})
            return Outcome(OutcomeKind.DONE, order, reason="waiting")
        return self._execute_route(order, self._holding_limit(order, route))

    def _rest_again(self, order: Order, to: OrderStatus, data: dict[str, Any]) -> None:
        waiting_at = order.version + 1
        self._book_add(order, waiting_at)
        try:
            self._move(order, to, data)
        except StaleOrderError:
            self._book_remove(order, waiting_at)
            raise

    @staticmethod
    def _holding_limit(order: Order, route: Route) -> Route:
        """The route with each leg's minimum raised to the limit: it holds on chain too."""
        return Executor._holding(route, order.required_out())

    @staticmethod
    def _holding(route: Route, floor: int) -> Route:
        legs = tuple(RouteLeg(leg.quote, max(leg.min_amount_out, floor)) for leg in route.legs)
        return replace(route, legs=legs)

    # -- sniper orders -------------------------------------------------------------------------
    def _sniper_ports(self) -> tuple[SniperBook, Launches, MarketEventSink]:
        if self._sniper_book is None or self._launches is None or self._events is None:
            raise PermanentExecutionError("sniper orders need the sniper book, the launches and the market "
                                          "events queue, which this worker was not given")
        return self._sniper_book, self._launches, self._events

    def _run_sniper(self, order: Order, receive_count: int) -> Outcome:
        if order.trigger is not None:
            return self._execute_sniper(order)
        if order.status in (OrderStatus.ROUTING, OrderStatus.BUILDING):
            # A worker died mid-flight before sending anything: start this attempt afresh.
            self._move(order, OrderStatus.PENDING, {"attempt": receive_count, "resumed": True})
        if order.status is OrderStatus.PENDING and order.was_triggered():
            return self._retrigger(order)
        return self._arm_sniper(order)

    def _arm_sniper(self, order: Order) -> Outcome:
        """A pending sniper starts waiting in the book; then (or on a redelivery of a waiting one) it
        looks whether its mint has launched already."""
        book, launches, events = self._sniper_ports()
        if order.status is OrderStatus.PENDING:
            waiting_at = order.version + 1
            book.add(order, waiting_at)  # before the write: once it waits, the matcher finds it
            try:
                self._move(order, OrderStatus.WAITING, {
                    "watchMint": order.token_out.mint, "maxPrice": order.max_price, "expiresAt": order.expires_at,
                    "checks": order.checks.to_data() if order.checks else None, "delaySlots": order.delay_slots})
            except StaleOrderError:  # cancelled meanwhile: it will never wait at that version
                self._sniper_remove(order, waiting_at)
                raise
        else:
            book.add(order, order.version)  # a redelivery: make sure the matcher knows it
        # After the write: a launch made before it published its opening only if someone watched.
        launch = launches.launch_of(order.token_out.mint)
        if launch is None or order.is_overdue(self._now()):
            return Outcome(OutcomeKind.DONE, order, reason="waiting")
        due_ms = launch.due_at_ms(order.delay_slots, launches.slot_ms)
        if due_ms > round(self._clock.now() * 1000):
            publish_opening(events, launch, due_ms, launches.slot(), self._clock)
            return Outcome(OutcomeKind.DONE, order, reason="waiting")
        waited_at = order.version
        order.token_out = launch.token
        self._move(order, OrderStatus.ROUTING, {
            "trigger": pool_created(launch, launches.slot(), order.delay_slots, "armed")})
        self._sniper_remove(order, waited_at)
        return self._execute_sniper(order)

    def _retrigger(self, order: Order) -> Outcome:
        """A sniper back in ``pending`` after its trigger (a retry, a slipped swap): its pool is
        open, so it goes straight back to ``routing`` with the same trigger."""
        trigger = next(e.data["trigger"] for e in reversed(order.history) if isinstance(e.data.get("trigger"), dict))
        self._move(order, OrderStatus.ROUTING, {"trigger": {**trigger, "cause": "retry"}})
        return self._execute_sniper(order)

    def _execute_sniper(self, order: Order) -> Outcome:
        """Triggered: the checks, then a quote under the cap, then the swap with the cap on chain."""
        _book, launches, _events = self._sniper_ports()
        launch = launches.launch_of(order.token_out.mint)
        if launch is None:
            raise PermanentExecutionError(f"{order.token_out.mint} has not launched, yet the order was triggered")
        # Another process's clock may run a little behind the one that triggered: the pool must be open.
        early = (launch.due_at_ms(0, launches.slot_ms) - self._clock.now() * 1000) / 1000
        if 0 < early <= MAX_OPENING_WAIT_SECONDS:
            self._clock.sleep(early)
        order.token_out = launch.token
        order.attempts += 1
        checks = order.checks or SniperChecks()
        failures = checks.failures(launch, launches.pool_lamports(launch))
        if failures:
            raise ChecksFailedError("; ".join(str(f) for f in failures),
                                    details={"checks": [f.check for f in failures]})
        route = self._router.route(order.token_in, order.token_out, order.amount_in, order.slippage_bps)
        order.quotes = [q.to_data() for q in route.quotes]
        cap = order.cap_out()
        if route.amount_out < cap:
            paid = price_string(route.amount_out, order.token_out, order.amount_in, order.token_in) \
                if route.amount_out else "more than any"
            spent = to_decimal_string(order.amount_in, order.token_in)
            raise PriceCapExceededError(
                f"the pool asks {paid} SOL per {order.token_out.symbol} for {spent} SOL, above the maxPrice of "
                f"{order.max_price}", details={"maxPrice": order.max_price, "price": paid})
        return self._execute_route(order, self._holding(route, cap))

    def _sniper_slipped(self, order: Order, exc: ExecutionError, attempt: int) -> Outcome:
        """A sniper's swap refused or failed for slippage never landed: quote the pool again at once
        (at most ``max_attempts`` swaps), the cap still holding."""
        if order.attempts >= self._max_attempts:
            return self._fail(order, exc, attempt)
        return self._after_slip(order, exc, attempt, self._retrigger)

    def _sniper_remove(self, order: Order, version: int) -> None:
        if self._sniper_book is not None:
            try:
                self._sniper_book.remove(order, version)
            except Exception:  # a stale entry only costs the matcher one refused write
                log.exception("could not remove the order from the sniper book", extra={"orderId": order.order_id})

    def _slipped(self, order: Order, exc: ExecutionError, attempt: int) -> Outcome:
        """A limit order's swap refused or failed for slippage never landed and never will: back to
        ``pending`` (its signature retired), then armed again."""
        return self._after_slip(order, exc, attempt, self._arm)

    def _after_slip(self, order: Order, exc: ExecutionError, attempt: int,
                    then: Callable[[Order], Outcome]) -> Outcome:
        """Back to ``pending`` with the slip recorded and the signature retired (that transaction
        never landed), then ``then`` at once; a failure of that is handled as any other."""
        order.error = self._error(exc, attempt)
        data: dict[str, Any] = {"attempt": attempt, "error": order.error, "slipped": True,
                                "expiredSignature": order.signature}
        order.signature = order.tx = order.last_valid_block_height = None
        self._move(order, OrderStatus.PENDING, data)
        try:
            return then(order)
        except ExecutionError as again:
            return self._handle_failure(order, again, attempt)

    def _book_add(self, order: Order, version: int) -> None:
        if order.type is OrderType.SNIPER:
            if self._sniper_book is not None:
                self._sniper_book.add(order, version)
        elif self._book is not None:
            self._book.add(order, version)

    def _book_remove(self, order: Order, version: int) -> None:
        if self._book is not None:
            try:
                self._book.remove(order, version)
            except Exception:  # a stale entry only costs the matcher one refused write
                log.exception("could not remove the order from the trigger book", extra={"orderId": order.order_id})

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.now(), UTC)

    def _build(self, order: Order, route: Route) -> Transaction:
        leg = route.legs[0]
        blockhash = self._chain.get_latest_blockhash()  # first: a failure leaves the order as it was
        order.venue = route.venue
        order.min_amount_out = route.min_amount_out
        return build_transaction(
            fee_payer=FEE_PAYER,
            blockhash=blockhash,
            route=route,
            nonce=f"{order.order_id}:{order.attempts}",
            amount_in=order.amount_in if leg.quote.token_in.is_sol else 0,
        )

    def _send_and_confirm(self, order: Order, tx: Transaction, max_wait: float | None = None) -> Outcome:
        try:
            self._chain.send_transaction(tx)  # idempotent per signature
        except BlockhashExpiredError:
            pass  # refused as too old: whether it landed all the same is the chain's to say, below
        status = self._await_landing(tx, max_wait)
        return self._finish(order, status)

    def _await_landing(self, tx: Transaction, max_wait: float | None = None) -> SignatureStatus:
        last_valid = tx.recent_blockhash.last_valid_block_height
        wait = self._max_wait if max_wait is None else max_wait
        give_up_at = self._clock.now() + wait
        while True:
            height = self._chain.get_block_height()  # before the status: see the module's docstring
            [status] = self._chain.get_signature_statuses([tx.signature])
            if status is not None and status.confirmation_status in ("confirmed", "finalized"):
                return status
            if status is None and height > last_valid:
                raise BlockhashExpiredError(
                    f"transaction {tx.signature[:16]}… did not land by block {last_valid}; "
                    f"block {height} seen before its status: it never will"
                )
            if self._clock.now() >= give_up_at:
                raise ConfirmationPendingError(
                    f"transaction {tx.signature[:16]}… not landed after {wait:g}s; "
                    f"valid until block {last_valid}")
            self._clock.sleep(self._poll)

    def _finish(self, order: Order, status: SignatureStatus) -> Outcome:
        if status.err is not None:
            message = describe_transaction_error(status.err, order.venue)
            log.warning("transaction failed on chain", extra={"orderId": order.order_id, "clientId": order.client_id,
                                                              "signature": order.signature, "error": message})
            exc = (SlippageExceededError(message, chain_error=status.err)
                   if status.err.get("name") == "SlippageToleranceExceeded"
                   else PermanentExecutionError(message, chain_error=status.err))
            if order.type is OrderType.LIMIT and isinstance(exc, SlippageExceededError):
                return self._slipped(order, exc, order.attempts or 1)
            if order.type is OrderType.SNIPER and isinstance(exc, SlippageExceededError):
                return self._sniper_slipped(order, exc, order.attempts or 1)
            return self._fail(order, exc, order.attempts or 1)
        amount_out = sum(f.amount_out for f in status.fills)
        order.amount_out = amount_out
        order.executed_price = price_string(order.amount_in, order.token_in, amount_out, order.token_out)
        order.tx_hash = order.signature
        order.error = None
        self._move(order, OrderStatus.CONFIRMED, {
            "txHash": order.tx_hash,
            "amountOut": to_decimal_string(amount_out, order.token_out),
            "executedPrice": order.executed_price,
            "venue": order.venue,
            "slot": status.slot,
        })
        self._terminal(order)
        return Outcome(OutcomeKind.DONE, order)

    # -- redelivery of a submitted order -----------------------------------------------------
    def _reconcile(self, order: Order, max_wait: float | None = None) -> Outcome:
        if order.signature is None or order.tx is None:
            return self._fail(order, PermanentExecutionError("submitted order has no transaction"), 1)
        tx = transaction_from_dict(order.tx, order.token_in, order.token_out)
        [status] = self._chain.get_signature_statuses([order.signature])
        log.info("reconciling submitted order", extra={"orderId": order.order_id, "clientId": order.client_id,
                                                       "signature": order.signature, "landed": status is not None})
        if status is None:
            # Never seen (crash between persisting and sending) or not landed yet: re-send the
            # same signed transaction; the chain de-duplicates it by signature. If it can no
            # longer land, the wait says so and the order is rebuilt.
            return self._send_and_confirm(order, tx, max_wait)
        if status.confirmation_status not in ("confirmed", "finalized"):
            status = self._await_landing(tx, max_wait)
        return self._finish(order, status)

    # -- failures ----------------------------------------------------------------------------
    def _handle_failure(self, order: Order, exc: ExecutionError, receive_count: int) -> Outcome:
        attempt = max(receive_count, 1)
        log.warning("execution failed", extra={"orderId": order.order_id, "clientId": order.client_id,
                                               "code": exc.code, "error": exc.message, "attempt": attempt,
                                               "retryable": exc.retryable, "status": order.status.value})
        if order.is_terminal:
            return Outcome(OutcomeKind.DONE, order)
        if order.status is OrderStatus.WAITING:
            # Checked again on a redelivery and the check failed: it still waits, in the book.
            self._book_add(order, order.version)
            return Outcome(OutcomeKind.DONE, order, reason="waiting")
        if order.type is OrderType.LIMIT and isinstance(exc, SlippageExceededError) and (
                order.status is OrderStatus.SUBMITTED):
            return self._slipped(order, exc, attempt)  # refused by the preflight: it never landed
        if order.type is OrderType.SNIPER and isinstance(exc, SlippageExceededError) and (
                order.status is OrderStatus.SUBMITTED):
            return self._sniper_slipped(order, exc, attempt)
        if order.status is OrderStatus.PENDING and isinstance(exc, TransientExecutionError) and (
                attempt < self._max_attempts):
            # Not armed yet (a limit order's quotes failed): nothing to undo, ask again later.
            order.error = self._error(exc, attempt)
            return Outcome(OutcomeKind.RETRY, order, self.backoff(attempt), exc.code)
        retry_possible = (
            isinstance(exc, TransientExecutionError)
            and attempt < self._max_attempts
            and order.can_transition(OrderStatus.PENDING)
        )
        expired = isinstance(exc, BlockhashExpiredError)
        if order.status is OrderStatus.SUBMITTED and exc.retryable and not expired:
            # The transaction may be in flight: keep the status, retry = reconcile later. Not even
            # the last attempt fails it blind; the dead-letter path reconciles first.
            return Outcome(OutcomeKind.RETRY, order, self.backoff(attempt), exc.code)
        if retry_possible:
            order.error = self._error(exc, attempt)
            data: dict[str, Any] = {"attempt": attempt + 1, "error": order.error}
            if order.status is OrderStatus.SUBMITTED:
                # Its transaction can never land: the next attempt builds a new one.
                data["expiredSignature"] = order.signature
                order.signature = order.tx = order.last_valid_block_height = None
            self._move(order, OrderStatus.PENDING, data)
            return Outcome(OutcomeKind.RETRY, order, self.backoff(attempt), exc.code)
        return self._fail(order, exc, attempt)

    def _fail(self, order: Order, exc: ExecutionError, attempt: int) -> Outcome:
        order.error = self._error(exc, attempt)
        self._move(order, OrderStatus.FAILED, {"error": order.error})
        log.warning("order failed", extra={"orderId": order.order_id, "clientId": order.client_id,
                                           "code": exc.code, "error": exc.message, "attempt": attempt})
        self._terminal(order)
        return Outcome(OutcomeKind.DONE, order, reason=exc.code)

    def fail_stuck(self, order_id: str, code: str, message: str) -> Outcome:
        """Used by the dead-letter handler: anything not terminal becomes ``failed``.

        A ``submitted`` order is the exception: only the chain can say how it ended, so it is
        reconciled, waiting at most ``dead_letter_wait_seconds`` for a landing (a swap lands in a
        few seconds). If the chain cannot tell yet (not landed, blockhash still valid, or the RPC
        failing), the outcome is a retry timed for when it can: just after the transaction's
        ``lastValidBlockHeight`` has passed, when it has either landed or never will.
        """
        order = self._store.get(order_id)
        if order is None or order.is_terminal:
            return Outcome(OutcomeKind.IGNORED, order, reason="not_found" if order is None else "terminal")
        if order.status is OrderStatus.WAITING:
            # Not stuck: it rests until the matcher, a cancel or its expiry moves it.
            return Outcome(OutcomeKind.IGNORED, order, reason="waiting")
        try:
            if order.status is OrderStatus.SUBMITTED:
                try:
                    return self._reconcile(order, max_wait=self._dead_letter_wait)
                except (PermanentExecutionError, BlockhashExpiredError) as failure:
                    # Failed on chain, or its transaction can never land: nothing is in flight.
                    return self._fail(order, failure, max(order.attempts, 1))
                except TransientExecutionError as pending:
                    return Outcome(OutcomeKind.RETRY, order, self.until_decidable(order), pending.code)
            return self._fail(order, _StuckError(code, message), max(order.attempts, 1))
        except StaleOrderError:
            return Outcome(OutcomeKind.IGNORED, reason="stale")

    def until_decidable(self, order: Order) -> int:
        """Seconds until a submitted order's transaction has landed or can never land: its
        blockhash's last valid block passed (and one slot more), at most a blockhash's lifetime."""
        last_valid = order.last_valid_block_height
        try:
            height = self._chain.get_block_height()
        except ExecutionError:
            height = None
        if last_valid is None or height is None:
            return UNDECIDABLE_RETRY_SECONDS
        slots = max(0, last_valid - height) + 2
        return max(1, min(BLOCKHASH_LIFETIME_SECONDS, math.ceil(slots * SLOT_SECONDS)))

    def backoff(self, attempt: int) -> int:
        """Seconds before the next attempt: base · 2^(attempt−1)."""
        return int(self._retry_base * 2 ** (max(attempt, 1) - 1))

    @staticmethod
    def _error(exc: ExecutionError, attempt: int) -> dict[str, Any]:
        error: dict[str, Any] = {"code": exc.code, "message": exc.message, "attempt": attempt,
                                 "retryable": exc.retryable, **exc.details}
        if exc.chain_error is not None:
            error["chainError"] = exc.chain_error
        return error

    # -- persistence ---------------------------------------------------------------------------
    def _move(self, order: Order, to: OrderStatus, data: dict[str, Any]) -> OrderEvent:
        # Only the write: the event leaves through the orders table's stream, so a crash after
        # this line cannot lose it and no subscriber's socket sits on the execution path.
        expected = order.version
        event = order.transition(to, data)
        self._save(order, expected)
        return event

    def _save(self, order: Order, expected_version: int) -> None:
        """Write the order's events after ``expected_version`` (conditioned on it), then one log
        line per status written, so that an order's story is ``grep`` of its id."""
        self._store.save(order, expected_version)
        for event in order.history:
            if event.seq > expected_version:
                log.info("order status", extra={"orderId": order.order_id, "clientId": order.client_id,
                                                "status": event.status.value, "seq": event.seq})

    def _terminal(self, order: Order) -> None:
        if self._on_terminal is not None:
            try:
                self._on_terminal(order)
            except Exception:  # live state is a cache; DynamoDB stays the source of truth
                log.exception("terminal hook failed", extra={"orderId": order.order_id, "clientId": order.client_id,
                                                             "status": order.status.value})
