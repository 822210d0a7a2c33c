"""Building the swap transaction, and storing it so a crashed worker can re-send it unchanged.

Re-sending the *same* signed transaction is how Solana clients recover safely: the network
de-duplicates by signature, so a transaction lands once at most however often it is sent.
That only works if the stored form rebuilds a byte-identical transaction, hence the explicit
round trip here (``transaction_from_dict(transaction_to_dict(tx)).signature == tx.signature``).
"""

from __future__ import annotations

from typing import Any

from ..domain import (
    Blockhash,
    Instruction,
    Quote,
    Route,
    SwapInstruction,
    Token,
    Transaction,
    UnwrapSol,
    WrapSol,
)

__all__ = ["build_transaction", "transaction_from_dict", "transaction_to_dict"]


def build_transaction(*, fee_payer: str, blockhash: Blockhash, route: Route, nonce: str, amount_in: int) -> Transaction:
    """Wrap SOL when it is sold, one swap per route leg, unwrap SOL when it is bought."""
    instructions: list[Instruction] = []
    if route.wrap_sol:
        instructions.append(WrapSol(lamports=amount_in))
    instructions.extend(SwapInstruction(quote=leg.quote, min_amount_out=leg.min_amount_out) for leg in route.legs)
    if route.unwrap_sol:
        instructions.append(UnwrapSol())
    return Transaction(fee_payer=fee_payer, recent_blockhash=blockhash, instructions=tuple(instructions), nonce=nonce)


def _quote_to_dict(q: Quote) -> dict[str, Any]:
    return {
        "venue": q.venue,
        "poolId": q.pool_id,
        "amountIn": str(q.amount_in),
        "amountOut": str(q.amount_out),
        "fee": str(q.fee),
        "priceImpactBps": q.price_impact_bps,
        "expiresAt": repr(q.expires_at),  # repr round-trips a float exactly
    }


def _quote_from_dict(raw: dict[str, Any], token_in: Token, token_out: Token) -> Quote:
    return Quote(
        venue=raw["venue"],
        pool_id=raw["poolId"],
        token_in=token_in,
        token_out=token_out,
        amount_in=int(raw["amountIn"]),
        amount_out=int(raw["amountOut"]),
        fee=int(raw["fee"]),
        price_impact_bps=int(raw["priceImpactBps"]),
        expires_at=float(raw["expiresAt"]),
    )


def transaction_to_dict(tx: Transaction) -> dict[str, Any]:
    instructions: list[dict[str, Any]] = []
    for ix in tx.instructions:
        if isinstance(ix, WrapSol):
            instructions.append({"kind": "wrapSol", "lamports": str(ix.lamports)})
        elif isinstance(ix, SwapInstruction):
            instructions.append({"kind": "swap", "quote": _quote_to_dict(ix.quote),
                                 "minAmountOut": str(ix.min_amount_out)})
        else:
            instructions.append({"kind": "unwrapSol"})
    return {
        "feePayer": tx.fee_payer,
        "blockhash": tx.recent_blockhash.value,
        "lastValidBlockHeight": tx.recent_blockhash.last_valid_block_height,
        "nonce": tx.nonce,
        "instructions": instructions,
        "signature": tx.signature,
    }


def transaction_from_dict(raw: dict[str, Any], token_in: Token, token_out: Token) -> Transaction:
    instructions: list[Instruction] = []
    for ix in raw["instructions"]:
        kind = ix["kind"]
        if kind == "wrapSol":
            instructions.append(WrapSol(lamports=int(ix["lamports"])))
        elif kind == "swap":
            instructions.append(SwapInstruction(quote=_quote_from_dict(ix["quote"], token_in, token_out),
                                                min_amount_out=int(ix["minAmountOut"])))
        else:
            instructions.append(UnwrapSol())
    tx = Transaction(
        fee_payer=raw["feePayer"],
        recent_blockhash=Blockhash(value=raw["blockhash"], last_valid_block_height=int(raw["lastValidBlockHeight"])),
        instructions=tuple(instructions),
        nonce=raw["nonce"],
    )
    if "signature" in raw and tx.signature != raw["signature"]:
        raise ValueError("stored transaction does not rebuild to its signature")
    return tx
