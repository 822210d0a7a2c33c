"""Domain errors. Each carries a stable ``code`` that the API turns into a response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "BlockhashExpiredError",
    "ChecksFailedError",
    "ConfirmationPendingError",
    "DomainError",
    "ExecutionError",
    "InsufficientLiquidityError",
    "InvalidOrderTransitionError",
    "NoRouteError",
    "PermanentExecutionError",
    "PriceCapExceededError",
    "QuoteTimeoutError",
    "RpcError",
    "SlippageExceededError",
    "TransientExecutionError",
    "UnknownTokenError",
    "UnsupportedOrderTypeError",
    "ValidationError",
]


class DomainError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(DomainError):
    """Input a user can fix: becomes a 400 naming the field."""

    code = "validation_error"


class UnknownTokenError(ValidationError):
    code = "unknown_token"


class UnsupportedOrderTypeError(ValidationError):
    code = "unsupported_order_type"


class InvalidOrderTransitionError(DomainError):
    """A transition the state table does not allow, e.g. ``confirmed -> routing``."""

    code = "invalid_transition"


class ExecutionError(DomainError):
    """A failure while executing an order. ``retryable`` decides what the worker does.

    ``chain_error``: the chain's own error value when it refused the transaction (Solana's
    ``err``, e.g. ``{"InstructionError": [0, {"Custom": 6001}]}``), kept beside the message.
    ``details``: what else the order's persisted error names (the checks that failed, the cap).
    """

    code = "execution_error"
    retryable = False

    def __init__(self, message: str, *, field: str | None = None,
                 chain_error: Mapping[str, Any] | None = None, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, field=field)
        self.chain_error = dict(chain_error) if chain_error is not None else None
        self.details = dict(details or {})


class TransientExecutionError(ExecutionError):
    """Worth another attempt: timeouts, RPC hiccups."""

    code = "transient_error"
    retryable = True


class PermanentExecutionError(ExecutionError):
    """Another attempt would fail the same way."""

    code = "permanent_error"
    retryable = False


class SlippageExceededError(PermanentExecutionError):
    code = "slippage_exceeded"


class InsufficientLiquidityError(PermanentExecutionError):
    code = "insufficient_liquidity"


class ChecksFailedError(PermanentExecutionError):
    """A sniper's safety checks refused the new pool: ``details["checks"]`` names each one."""

    code = "checks_failed"


class PriceCapExceededError(PermanentExecutionError):
    """A sniper's pool asks more than its ``maxPrice``."""

    code = "price_cap_exceeded"


class NoRouteError(TransientExecutionError):
    """No venue returned a usable quote (all failed or expired)."""

    code = "no_route"


class QuoteTimeoutError(TransientExecutionError):
    code = "quote_timeout"


class RpcError(TransientExecutionError):
    code = "rpc_error"


class ConfirmationPendingError(TransientExecutionError):
    """Sent, not landed yet, blockhash still valid: ask again later, never send anything new."""

    code = "confirmation_pending"


class BlockhashExpiredError(TransientExecutionError):
    """The transaction's blockhash expired before it landed; it can never land now.

    Transient for the order: a new transaction, with a fresh blockhash, may well land.
    """

    code = "blockhash_expired"
