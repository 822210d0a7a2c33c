"""Structured logs: one JSON object per line, so each order's story can be grepped by its id.

Every module logs through ``logger``, the service's Powertools ``Logger``: a message, and what
it is about as keys (``extra={...}``), never a pre-serialised string. Each line carries
``timestamp``, ``level``, ``message``, ``service`` and ``location`` (module.function:line), then:

- ``orderId`` and ``clientId``, the correlation keys, wherever a unit of work is about one order
  or one client (a REST request, a WebSocket message, an orders queue record, ...);
- on Lambda (and in the local stack, which hands each handler a Lambda context), the invocation:
  ``function_name``, ``function_request_id``, ``function_arn``, ``function_memory_size``,
  ``cold_start``.

Keys of a unit of work live in a context variable (Powertools' thread-safe keys), not on the
shared formatter: the records of a batch run concurrently in threads, and one record's order id
must never show on another's lines. ``log_keys`` opens a scope and puts back what was there when
it closes; ``add_log_keys`` adds to the scope open in this thread; ``keep_log_keys`` carries the
current keys into a worker thread.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.lambda_context import build_lambda_context_model

__all__ = ["SERVICE", "add_log_keys", "configure_logging", "keep_log_keys", "lambda_context_keys",
           "lambda_context_middleware", "log_keys", "logger", "scoped"]

SERVICE = "order-engine"

P = ParamSpec("P")
R = TypeVar("R")

# The level comes from LOG_LEVEL (read here by Powertools, and set again by configure_logging
# from the stage's settings). UTC ISO 8601 timestamps; the ids right after the message.
logger = Logger(
    service=SERVICE,
    utc=True,
    use_rfc3339=True,
    log_record_order=["timestamp", "level", "message", "orderId", "clientId"],
    serialize_stacktrace=False,  # the "exception" key has the whole traceback already, as text
    location="%(module)s.%(funcName)s:%(lineno)d",
)
# Its lines go out once, through its own handler, not again through whatever the root logger has.
logging.getLogger(logger.name).propagate = False


def configure_logging(app: Any, level: int | str = logging.INFO) -> None:
    """The level from the stage's settings; Chalice's own log (errors it catches) goes out as
    the service's JSON lines too."""
    logger.setLevel(level)
    app.log = logging.getLogger(logger.name)


def _present(keys: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in keys.items() if v is not None}


@contextmanager
def log_keys(**keys: object) -> Iterator[None]:
    """Every line this thread logs inside the block carries ``keys`` (those not None); on leaving,
    the keys are what they were before it, whatever was added inside."""
    before = dict(logger.thread_safe_get_current_keys())
    logger.thread_safe_append_keys(**_present(keys))
    try:
        yield
    finally:
        # clear + append: both set a new dict, so a context copied into another thread keeps its own
        logger.thread_safe_clear_keys()
        if before:
            logger.thread_safe_append_keys(**before)


def add_log_keys(**keys: object) -> None:
    """Add ``keys`` (those not None) to the scope open in this thread, e.g. the client once the
    request is authenticated; they go when that scope closes."""
    present = _present(keys)
    if present:
        logger.thread_safe_append_keys(**present)


def scoped(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn`` in a scope of its own: what it adds with ``add_log_keys`` ends with the call."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with log_keys():
            return fn(*args, **kwargs)

    return wrapper


def keep_log_keys(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, run with the keys of the thread that wraps it (for a thread pool's tasks, which
    otherwise start with none). Each call gets its own copy: keys it adds stay with it."""
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return wrapper


_first_request: list[str] = []
_first_request_lock = threading.Lock()


def lambda_context_keys(context: Any) -> dict[str, Any]:
    """The Lambda context's keys for the log lines of its invocation (none without a context).

    ``cold_start`` is true for the first invocation this process serves, whichever thread asks
    (the middleware, or a batch's record in a thread of its own)."""
    if context is None or not hasattr(context, "aws_request_id"):
        return {}
    model = build_lambda_context_model(context)
    with _first_request_lock:
        if not _first_request:
            _first_request.append(model.function_request_id)
    return {"cold_start": model.function_request_id == _first_request[0], **vars(model)}


def lambda_context_middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware for every kind of handler: the invocation's lines carry its Lambda
    context, and nothing a handler adds outlives the invocation (a warm Lambda, or a thread
    of the local stack, serves the next one)."""
    # A REST request keeps its Lambda context in ``lambda_context`` (``context`` is API
    # Gateway's request context); every other event, in ``context``.
    context = getattr(event, "lambda_context", None) or getattr(event, "context", None)
    with log_keys(**lambda_context_keys(context)):
        return get_response(event)
