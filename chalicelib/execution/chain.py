"""A simulated Solana cluster behind the ``Chain`` port: blockhashes, signatures, landing.

Its state is the market's (``SimState``), shared by every process, so a worker in another
container sees the same block height, the same signatures and the same pools.

* The block height advances one per slot (400 ms) since the cluster's genesis. A blockhash is
  valid for 150 blocks: ``get_latest_blockhash`` returns it with its ``lastValidBlockHeight``.
* ``send_transaction`` runs a preflight (blockhash still valid, every swap still above its
  minimum) and accepts the transaction: its record (``sim:sig:<signature>``) and its place in
  the queue of transactions to land (``sim:pending``, scored by landing time). Sending it again
  is a no-op, as the network de-duplicates by signature. Its confirmation latency, and whether
  the network drops it (``blockhash_expiry_rate``), are drawn from (seed, signature), so they do
  not depend on which process sent it.
* A transaction lands at its time on the market's timeline, atomically with everything else due
  then, and only if its landing slot is at or below its ``lastValidBlockHeight``; otherwise it is
  dropped and never lands, as on Solana. Its swaps change the pools then, once, all or none.
* ``get_signature_statuses`` first lands (or drops) everything due by now, then reads. A send is
  never scheduled to land before the time up to which the cluster has settled (the send watches
  that clock), so a status read as ``None`` after a block height above the transaction's
  ``lastValidBlockHeight`` proves the transaction can never land, in any process.
* A landed status is ``confirmed``, then ``finalized`` 32 slots later; ``err`` carries an
  instruction error such as a slippage failure at landing time.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..domain import (
    Blockhash,
    BlockhashExpiredError,
    DomainError,
    Fill,
    PoolChange,
    RpcError,
    SignatureStatus,
    SlippageExceededError,
    Transaction,
)
from ..domain.base58 import b58encode
from ..domain.clock import Clock
from ..routing.market import CLOCK_KEY, ClusterClock, PoolBook, Scheduled, SimulatedMarket, pool_key
from ..routing.state import StateTxn

__all__ = ["FINALIZATION_SLOTS", "PENDING_KEY", "ChainSettings", "SimulatedChain", "signature_key"]

FINALIZATION_SLOTS = 32
PENDING_KEY = "sim:pending"
SIGNATURE_TTL_SECONDS = 86_400


def signature_key(signature: str) -> str:
    return f"sim:sig:{signature}"


@dataclass(frozen=True)
class ChainSettings:
    blockhash_validity_blocks: int = 150
    confirm_latency_ms: tuple[int, int] = (0, 0)
    rpc_error_rate: float = 0.0
    blockhash_expiry_rate: float = 0.0  # share of accepted transactions the network drops
    seed: int = 7


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


class SimulatedChain:
    """Implements the ``Chain`` port on the market's shared state and timeline."""

    queue_key = PENDING_KEY

    def __init__(self, market: SimulatedMarket, clock: Clock, settings: ChainSettings | None = None) -> None:
        self.settings = settings or ChainSettings()
        self._market = market
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(self.settings.seed * 15_485_863 + 3)
        self._send_calls = 0
        market.attach(self)

    # -- clock -----------------------------------------------------------------------------------
    def get_block_height(self) -> int:
        return self._market.block_height()

    def get_latest_blockhash(self) -> Blockhash:
        height = self.get_block_height()
        value = b58encode(hashlib.sha256(f"{self.settings.seed}:{height}".encode()).digest())
        return Blockhash(value, height + self.settings.blockhash_validity_blocks)

    # -- transactions ----------------------------------------------------------------------------
    def send_transaction(self, tx: Transaction) -> str:
        signature = tx.signature
        key = signature_key(signature)
        with self._lock:
            self._send_calls += 1
            roll_rpc = self._rng.random()
        if roll_rpc < self.settings.rpc_error_rate:
            raise RpcError("RPC node returned 503 Service Unavailable to sendTransaction")
        latency_ms, dropped = self._fate(signature)
        swaps = [(ix.quote.venue, ix.quote.pool_id, ix.quote.token_in.mint, ix.quote.amount_in, ix.min_amount_out)
                 for ix in tx.swaps]

        def accept(txn: StateTxn) -> None:
            txn.watch(key, CLOCK_KEY)
            [existing, raw_clock, *pools], _ = txn.read([key, CLOCK_KEY, *[pool_key(sw[1]) for sw in swaps]])
            if existing is not None:
                return  # already seen: the network de-duplicates by signature
            now_ms = self._market.elapsed_ms()
            self._check_blockhash(tx, now_ms)
            for (_venue, pool_id, mint_in, amount_in, min_out), raw_pool in zip(swaps, pools, strict=True):
                try:  # preflight simulation, as RPC nodes do before forwarding
                    self._market.preflight(pool_id, raw_pool, mint_in, amount_in, min_out, now_ms)
                except SlippageExceededError as exc:
                    raise SlippageExceededError(
                        f"the RPC node's preflight refused the transaction: {exc.message}") from None
            settled_ms = ClusterClock.load(raw_clock).processed_ms if raw_clock is not None else 0
            # Never scheduled before what the cluster has already settled: a status read earlier
            # stays true (see the module's docstring).
            at_ms = max(now_ms + latency_ms, settled_ms)
            record = {"st": "dropped" if dropped else "pending", "at": at_ms,
                      "lv": tx.recent_blockhash.last_valid_block_height, "sw": swaps}
            txn.set(key, _dump(record), SIGNATURE_TTL_SECONDS)
            if not dropped:
                txn.zadd(PENDING_KEY, signature, at_ms, SIGNATURE_TTL_SECONDS)

        self._market.state.transaction(accept)
        return signature

    def _check_blockhash(self, tx: Transaction, now_ms: int) -> None:
        last_valid = tx.recent_blockhash.last_valid_block_height
        if self._market.slot_at(now_ms) > last_valid:
            raise BlockhashExpiredError(
                f"blockhash {tx.recent_blockhash.value[:8]}… expired at block {last_valid}")

    def _fate(self, signature: str) -> tuple[int, bool]:
        """(confirmation latency in ms, dropped by the network), drawn from (seed, signature)."""
        digest = hashlib.sha256(f"{self.settings.seed}:fate:{signature}".encode()).digest()
        low, high = self.settings.confirm_latency_ms
        latency = low + int.from_bytes(digest[:8], "big") * (high - low) // 2**64
        dropped = int.from_bytes(digest[8:16], "big") / 2**64 < self.settings.blockhash_expiry_rate
        return latency, dropped

    def get_signature_statuses(self, signatures: Sequence[str]) -> list[SignatureStatus | None]:
        raws = self._market.read([signature_key(s) for s in signatures])
        height = self.get_block_height()
        return [self._status(raw, height) for raw in raws]

    @staticmethod
    def _status(raw: str | None, height: int) -> SignatureStatus | None:
        record = json.loads(raw) if raw is not None else None
        if record is None or record["st"] != "landed":
            return None  # not landed yet, dropped, or never seen: Solana answers null for all three
        slot = int(record["slot"])
        fills = tuple(Fill(v, p, int(a_in), int(a_out), int(fee)) for v, p, a_in, a_out, fee in record["fills"])
        finalized = height >= slot + FINALIZATION_SLOTS
        return SignatureStatus(slot, "finalized" if finalized else "confirmed", record["err"], fills)

    # -- landing, on the market's timeline --------------------------------------------------------
    def scheduled(self, txn: StateTxn, due: list[tuple[str, int]]) -> list[Scheduled]:
        if not due:
            return []
        raws = txn.get(*[signature_key(s) for s, _ in due])
        items = []
        for (signature, at_ms), raw in zip(due, raws, strict=True):
            record = json.loads(raw) if raw is not None else None
            pool_ids = tuple(str(sw[1]) for sw in record["sw"]) if record else ()
            items.append(Scheduled(at_ms, signature, pool_ids, partial(self._land, txn, signature, record)))
        return items

    def _land(self, txn: StateTxn, signature: str, record: dict[str, Any] | None,
              book: PoolBook) -> list[PoolChange]:
        txn.zrem(PENDING_KEY, signature)
        if record is None or record["st"] != "pending":
            return []
        at_ms = int(record["at"])
        slot = self._market.slot_at(at_ms)
        if slot > int(record["lv"]):
            record["st"] = "dropped"  # its blockhash expired before it could land: it never will
            txn.set(signature_key(signature), _dump(record), SIGNATURE_TTL_SECONDS)
            return []
        saved = book.savepoint([str(sw[1]) for sw in record["sw"]])
        fills: list[Fill] = []
        err: dict[str, Any] | None = None
        for index, (_venue, pool_id, mint_in, amount_in, min_out) in enumerate(record["sw"]):
            try:
                fills.append(self._market.swap_in(book, pool_id, mint_in, int(amount_in), int(min_out), at_ms))
            except SlippageExceededError:
                err = {"InstructionError": [index, {"Custom": 6001}], "name": "SlippageToleranceExceeded"}
            except (DomainError, ValueError) as exc:  # any other failure is an on-chain error too
                err = {"InstructionError": [index, "ProgramFailedToComplete"], "name": type(exc).__name__}
            if err is not None:
                book.rollback(saved)  # a transaction applies all its instructions or none
                fills = []
                break
        record.update(st="landed", slot=slot, err=err,
                      fills=[[f.venue, f.pool_id, f.amount_in, f.amount_out, f.fee] for f in fills])
        txn.set(signature_key(signature), _dump(record), SIGNATURE_TTL_SECONDS)
        return [PoolChange(f.venue, f.pool_id, slot, "swap", signature) for f in fills]

    # -- introspection (tests, benchmarks) -------------------------------------------------------
    def executed_swaps(self) -> int:
        """Swaps landed by transactions, by every process sharing the cluster."""
        return self._market.landed_swaps()

    def send_calls(self) -> int:
        """``send_transaction`` calls made by this process."""
        with self._lock:
            return self._send_calls
