"""Pure domain: orders, the state table, events, tokens, amounts, errors, and what a chain speaks.

Imports only the standard library.
"""

from .amounts import (
    min_out_at_cap,
    min_out_at_price,
    parse_decimal,
    price,
    price_string,
    to_base_units,
    to_decimal_string,
)
from .chain import (
    Blockhash,
    Instruction,
    PoolChange,
    SignatureStatus,
    SwapInstruction,
    Transaction,
    UnwrapSol,
    WrapSol,
    describe_transaction_error,
)
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .orders import (
    CANCELLABLE,
    DEFAULT_WAIT,
    MAX_WAIT,
    SUPPORTED_TYPES,
    TERMINAL,
    TRANSITIONS,
    WAITING_TYPES,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    iso,
    new_order_id,
    parse_iso,
    request_fingerprint,
    utc_now,
)
from .quotes import Fill, Quote, Route, RouteLeg
from .sniper import MAX_DELAY_SLOTS, CheckFailure, PoolLaunch, SniperChecks
from .tokens import TOKENS, UNKNOWN_DECIMALS, WSOL_MINT, Token, get_token, unlaunched

__all__ = [
    *_errors_all,
    "Blockhash",
    "Instruction",
    "PoolChange",
    "SignatureStatus",
    "SwapInstruction",
    "Transaction",
    "UnwrapSol",
    "WrapSol",
    "CANCELLABLE",
    "DEFAULT_WAIT",
    "MAX_WAIT",
    "SUPPORTED_TYPES",
    "describe_transaction_error",
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
    "Fill",
    "Quote",
    "Route",
    "RouteLeg",
    "MAX_DELAY_SLOTS",
    "CheckFailure",
    "PoolLaunch",
    "SniperChecks",
    "TOKENS",
    "UNKNOWN_DECIMALS",
    "WSOL_MINT",
    "Token",
    "get_token",
    "unlaunched",
    "min_out_at_cap",
    "min_out_at_price",
    "parse_decimal",
    "price",
    "price_string",
    "to_base_units",
    "to_decimal_string",
]
