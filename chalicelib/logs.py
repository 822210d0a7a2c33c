"""Structured logs: one JSON object per line, so each order's story can be grepped by its id."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["configure_logging"]


def configure_logging(app: Any, level: int | str = logging.INFO) -> None:
    logger = logging.getLogger("order_engine")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    app.log.setLevel(level)
