"""A simulated Solana cluster: slots, blockhashes, signatures and confirmation.

* The block height advances one per ``slot_ms`` (400 ms) of the clock. A blockhash is valid
  for 150 blocks: ``get_latest_blockhash`` returns it with its ``lastValidBlockHeight``.
* A transaction's signature is 64 bytes (here a SHA-512 of its message, standing in for the
  fee payer's ed25519 signature), shown in base58 like every Solana signature. The same
  transaction always has the same signature.
* ``send_transaction`` runs a preflight (blockhash still valid, every swap still above its
  minimum) and accepts the transaction; sending it again is a no-op, as the network
  de-duplicates by signature. It lands ``confirm_latency_ms`` later; only then are its swaps
  applied to the venues' pools, once, in landing order.
* ``get_signature_status`` is ``None`` until it lands (or forever, for a transaction the
  network dropped), then ``confirmed``, then ``finalized`` 32 slots later; ``err`` carries an
  instruction error such as a slippage failure at landing time.
* It remembers every signature it accepted, so a worker that crashed can ask what happened.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from dataclasses import dataclass, field
from typing import Any

from ..domain import BlockhashExpiredError, Fill, Quote, RpcError, SlippageExceededError
from ..domain.base58 import b58encode
from ..domain.clock import Clock
from ..routing.market import SimulatedMarket

__all__ = [
    "Blockhash",
    "ChainSettings",
    "Instruction",
    "SignatureStatus",
    "SimulatedChain",
    "SwapInstruction",
    "Transaction",
    "UnwrapSol",
    "WrapSol",
]

GENESIS_HEIGHT = 280_000_000
FINALIZATION_SLOTS = 32


@dataclass(frozen=True)
class Blockhash:
    value: str
    last_valid_block_height: int


@dataclass(frozen=True)
class WrapSol:
    """Create the wrapped-SOL account and move ``lamports`` into it."""

    lamports: int


@dataclass(frozen=True)
class SwapInstruction:
    quote: Quote
    min_amount_out: int


@dataclass(frozen=True)
class UnwrapSol:
    """Close the wrapped-SOL account, returning its lamports as native SOL."""


Instruction = WrapSol | SwapInstruction | UnwrapSol


def _instruction_message(ix: Instruction) -> dict[str, Any]:
    if isinstance(ix, WrapSol):
        return {"wrapSol": ix.lamports}
    if isinstance(ix, SwapInstruction):
        q = ix.quote
        return {"swap": [q.venue, q.pool_id, q.token_in.mint, q.token_out.mint, q.amount_in, ix.min_amount_out]}
    return {"unwrapSol": True}


@dataclass(frozen=True)
class Transaction:
    fee_payer: str
    recent_blockhash: Blockhash
    instructions: tuple[Instruction, ...]
    nonce: str  # makes two otherwise identical orders distinct transactions

    def message(self) -> bytes:
        body = {
            "feePayer": self.fee_payer,
            "recentBlockhash": self.recent_blockhash.value,
            "instructions": [_instruction_message(ix) for ix in self.instructions],
            "nonce": self.nonce,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @property
    def signature(self) -> str:
        return b58encode(hashlib.sha512(self.message()).digest())

    @property
    def swaps(self) -> tuple[SwapInstruction, ...]:
        return tuple(ix for ix in self.instructions if isinstance(ix, SwapInstruction))


@dataclass(frozen=True)
class SignatureStatus:
    slot: int
    confirmation_status: str  # processed | confirmed | finalized
    err: dict[str, Any] | None
    fills: tuple[Fill, ...] = ()


@dataclass(frozen=True)
class ChainSettings:
    slot_ms: int = 400
    blockhash_validity_blocks: int = 150
    confirm_latency_ms: tuple[int, int] = (0, 0)
    rpc_error_rate: float = 0.0
    blockhash_expiry_rate: float = 0.0  # share of accepted transactions the network drops
    seed: int = 7


@dataclass
class _Sent:
    tx: Transaction
    land_at: float | None  # None: dropped, never lands
    landed_slot: int | None = None
    err: dict[str, Any] | None = None
    fills: tuple[Fill, ...] = field(default_factory=tuple)


class SimulatedChain:
    def __init__(self, market: SimulatedMarket, clock: Clock, settings: ChainSettings | None = None) -> None:
        self.settings = settings or ChainSettings()
        self._market = market
        self._clock = clock
        self._start = clock.now()
        self._lock = threading.RLock()
        self._rng = random.Random(self.settings.seed * 15_485_863 + 3)
        self._sent: dict[str, _Sent] = {}
        self._pending: list[str] = []  # accepted, not landed yet (in send order)
        self._swaps = 0
        self._send_calls = 0

    # -- clock -----------------------------------------------------------------------------------
    def block_height(self) -> int:
        elapsed_ms = round((self._clock.now() - self._start) * 1000, 3)  # no float dust at slot edges
        return GENESIS_HEIGHT + int(elapsed_ms // self.settings.slot_ms)

    def get_latest_blockhash(self) -> Blockhash:
        height = self.block_height()
        value = b58encode(hashlib.sha256(f"{self.settings.seed}:{height}".encode()).digest())
        return Blockhash(value, height + self.settings.blockhash_validity_blocks)

    # -- transactions ----------------------------------------------------------------------------
    def send_transaction(self, tx: Transaction) -> str:
        signature = tx.signature
        with self._lock:
            self._send_calls += 1
            self._settle()
            if signature in self._sent:
                return signature  # already seen: the network de-duplicates by signature
            roll_rpc, roll_drop = self._rng.random(), self._rng.random()
            low, high = self.settings.confirm_latency_ms
            latency = self._rng.uniform(low, high) / 1000 if high > 0 else 0.0
            if roll_rpc < self.settings.rpc_error_rate:
                raise RpcError("RPC node returned 503 Service Unavailable to sendTransaction")
            if self.block_height() > tx.recent_blockhash.last_valid_block_height:
                raise BlockhashExpiredError(
                    f"blockhash {tx.recent_blockhash.value[:8]}… expired at block "
                    f"{tx.recent_blockhash.last_valid_block_height}")
            for ix in tx.swaps:  # preflight simulation, as RPC nodes do before forwarding
                self._preflight(ix)
            dropped = roll_drop < self.settings.blockhash_expiry_rate
            self._sent[signature] = _Sent(tx, None if dropped else self._clock.now() + latency)
            if not dropped:
                self._pending.append(signature)
            return signature

    def _preflight(self, ix: SwapInstruction) -> None:
        try:
            self._market.venue(ix.quote.venue).simulate_swap(ix.quote, ix.min_amount_out)
        except SlippageExceededError as exc:
            raise SlippageExceededError(f"preflight: {exc.message}") from None

    def get_signature_status(self, signature: str) -> SignatureStatus | None:
        with self._lock:
            self._settle()
            sent = self._sent.get(signature)
            if sent is None or sent.landed_slot is None:
                return None
            slot = sent.landed_slot
            finalized = self.block_height() >= slot + FINALIZATION_SLOTS
            return SignatureStatus(slot, "finalized" if finalized else "confirmed", sent.err, sent.fills)

    def _settle(self) -> None:
        """Land every accepted transaction whose time has come, in order."""
        now = self._clock.now()
        still: list[str] = []
        for signature in self._pending:
            sent = self._sent[signature]
            assert sent.land_at is not None
            if sent.land_at > now:
                still.append(signature)
                continue
            sent.landed_slot = self.block_height()
            fills: list[Fill] = []
            for index, ix in enumerate(sent.tx.swaps):
                try:
                    fills.append(self._market.venue(ix.quote.venue).swap(ix.quote, ix.min_amount_out))
                except SlippageExceededError:
                    sent.err = {"InstructionError": [index, {"Custom": 6001}], "name": "SlippageToleranceExceeded"}
                    break
                except Exception as exc:  # any other failure is an on-chain error too
                    sent.err = {"InstructionError": [index, "ProgramFailedToComplete"], "name": type(exc).__name__}
                    break
            if sent.err is None:
                sent.fills = tuple(fills)
                self._swaps += len(fills)
        self._pending = still

    # -- introspection (tests, benchmarks) -------------------------------------------------------
    def executed_swaps(self) -> int:
        with self._lock:
            self._settle()
            return self._swaps

    def sent_count(self) -> int:
        """Distinct transactions accepted."""
        with self._lock:
            return len(self._sent)

    def send_calls(self) -> int:
        with self._lock:
            return self._send_calls
