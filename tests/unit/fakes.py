"""In-memory stand-ins for the executor's ports: the same contract as the DynamoDB adapter."""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

from chalicelib.domain import Order
from chalicelib.execution.ports import StaleOrderError


@dataclass
class InMemoryOrderStore:
    orders: dict[str, Order] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, order_id: str) -> Order | None:
        with self.lock:
            order = self.orders.get(order_id)
            return copy.deepcopy(order) if order else None

    def create(self, order: Order) -> tuple[Order, bool]:
        with self.lock:
            if order.order_id in self.orders:
                return copy.deepcopy(self.orders[order.order_id]), False
            self.orders[order.order_id] = copy.deepcopy(order)
            return order, True

    def save(self, order: Order, expected_version: int) -> None:
        with self.lock:
            current = self.orders[order.order_id]
            if current.version != expected_version:
                raise StaleOrderError(f"{order.order_id} at {current.version}, not {expected_version}")
            self.orders[order.order_id] = copy.deepcopy(order)
