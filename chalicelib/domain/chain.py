"""What a Solana cluster speaks: blockhashes, transactions and their instructions, signature
statuses, and the news that a pool changed at a slot.

* A blockhash is valid for 150 blocks: ``get_latest_blockhash`` returns it with its
  ``lastValidBlockHeight``; a transaction can land only at a slot at or below it.
* A transaction's signature is 64 bytes (here a SHA-512 of its message, standing in for the
  fee payer's ed25519 signature), shown in base58 like every Solana signature. The same
  transaction always has the same signature, which is how the network de-duplicates it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .base58 import b58encode
from .quotes import Fill, Quote

__all__ = [
    "Blockhash",
    "Instruction",
    "PoolChange",
    "SignatureStatus",
    "SwapInstruction",
    "Transaction",
    "UnwrapSol",
    "WrapSol",
    "describe_transaction_error",
]


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
    """One entry of ``getSignatureStatuses``: where and how a transaction landed."""

    slot: int
    confirmation_status: str  # processed | confirmed | finalized
    err: dict[str, Any] | None
    fills: tuple[Fill, ...] = ()


@dataclass(frozen=True)
class PoolChange:
    """A pool's state changed at ``slot``: by a landed swap (``signature``) or by market flow."""

    venue: str
    pool_id: str
    slot: int
    cause: str  # swap | tick
    signature: str | None = None


# What the cluster's own name for an instruction's failure means for a swap (``err["name"]``).
_SWAP_FAILURES = {
    "SlippageToleranceExceeded": "returned less than the minimum (slippage exceeded)",
    "InsufficientLiquidityError": "could not be filled by the pool (insufficient liquidity)",
}


def _words(name: str) -> str:
    """``ProgramFailedToComplete`` → ``program failed to complete``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").lower()


def _detail(value: Any) -> str:
    if isinstance(value, Mapping) and len(value) == 1:
        [(kind, arg)] = value.items()
        if kind == "Custom":
            return f"custom program error {arg}"
        return f"{_words(str(kind))} {arg}" if isinstance(arg, int | str) else _words(str(kind))
    return _words(str(value)) if isinstance(value, str) else "an error the chain did not name"


def describe_transaction_error(err: Mapping[str, Any], venue: str | None = None) -> str:
    """A sentence for a landed transaction's ``err`` (``getSignatureStatuses``), e.g.
    ``{"InstructionError": [0, {"Custom": 6001}], "name": "SlippageToleranceExceeded"}`` →
    "the swap on raydium returned less than the minimum (slippage exceeded); custom program error
    6001 in instruction 0". The raw value is the caller's to keep alongside."""
    failure = _SWAP_FAILURES.get(str(err.get("name", "")))
    instruction = err.get("InstructionError")
    if isinstance(instruction, list | tuple) and len(instruction) == 2:
        index, detail = instruction
        what = f"the swap on {venue}" if venue else "the swap"
        return f"{what} {failure or 'failed on chain'}; {_detail(detail)} in instruction {index}"
    kinds = [key for key in err if key != "name"]
    if len(kinds) == 1:
        return f"the transaction failed on chain: {_detail({kinds[0]: err[kinds[0]]})}"
    return f"the transaction failed on chain{f' ({failure})' if failure else ''}"
