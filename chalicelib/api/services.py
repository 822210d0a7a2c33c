"""Wiring: settings → adapters → engine. Built lazily, once per process (one Lambda container).

Tests replace the whole container with ``set_services``; nothing else is global.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..adapters.aws import PUSH_CLIENT_CONFIG, AwsClients
from ..adapters.connections_table import ConnectionsTable
from ..adapters.notifier import Notifier
from ..adapters.orders_table import OrdersTable
from ..adapters.parameters import ParameterStore
from ..adapters.queue import MarketEventsQueue, OrdersQueue
from ..adapters.redis_book import RedisTriggerBook
from ..adapters.redis_sim_state import RedisSimState
from ..adapters.redis_sniper_book import RedisSniperBook
from ..adapters.redis_state import RedisState
from ..config import Settings, get_settings
from ..domain import PoolChange, PoolLaunch
from ..domain.clock import Clock, SystemClock
from ..execution.chain import ChainSettings, SimulatedChain
from ..execution.executor import Executor
from ..execution.triggers import LaunchWatch, MarketWatch, Matcher, WaitingBooks
from ..routing.market import MarketSettings, SimulatedMarket
from ..routing.router import Router
from ..routing.state import SimState
from .fanout import Fanout
from .keys import KeySource

__all__ = ["Services", "get_services", "reset_services", "set_services"]

_MAX_CACHED_CONNECTIONS = 10_000
_build_lock = threading.Lock()


@dataclass
class Services:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    aws: AwsClients | None = None
    redis_client: Any = None
    # connectionId -> clientId. A connection's owner never changes and its id is never reused,
    # so once read it need not be read again for every message the socket sends.
    _connection_owners: dict[str, str] = field(default_factory=dict, repr=False)
    health_cache: tuple[float, dict[str, str]] | None = field(default=None, repr=False)  # (at, checks)

    def connection_owner(self, connection_id: str) -> str | None:
        """The client a connection belongs to: cached, else from the connections table."""
        owner = self._connection_owners.get(connection_id)
        if owner is None:
            connection = self.connections.get(connection_id)
            if connection is None:
                return None
            owner = connection.client_id
            if len(self._connection_owners) >= _MAX_CACHED_CONNECTIONS:
                self._connection_owners.clear()
            self._connection_owners[connection_id] = owner
        return owner

    def forget_connection(self, connection_id: str) -> None:
        self._connection_owners.pop(connection_id, None)

    def warm(self) -> Services:
        """Build the engine now, once: ``cached_property`` takes no lock (Python 3.12+), and
        two threads building two engines would each attach a chain to their own market."""
        with _build_lock:
            _ = self.executor
        return self

    @cached_property
    def _aws(self) -> AwsClients:
        return self.aws or AwsClients(self.settings)

    @cached_property
    def orders(self) -> OrdersTable:
        return OrdersTable(self._aws.client("dynamodb"), self.settings.orders_table)

    @cached_property
    def connections(self) -> ConnectionsTable:
        return ConnectionsTable(self._aws.client("dynamodb"), self.settings.connections_table)

    @cached_property
    def queue(self) -> OrdersQueue:
        return OrdersQueue(self._aws.client("sqs"), self.settings.orders_queue)

    @cached_property
    def dead_letters(self) -> OrdersQueue:
        """The orders' dead-letter queue: its handler times its own retries."""
        return OrdersQueue(self._aws.client("sqs"), self.settings.orders_dlq)

    @cached_property
    def market_events(self) -> MarketEventsQueue:
        return MarketEventsQueue(self._aws.client("sqs"), self.settings.market_events_queue)

    @cached_property
    def notifier(self) -> Notifier:
        endpoint = self.settings.management_endpoint()
        return Notifier(self._aws.client("apigatewaymanagementapi", endpoint_url=endpoint))

    @cached_property
    def keys(self) -> KeySource:
        fetch = None
        if self.settings.api_keys_parameter:
            fetch = ParameterStore(self._aws.client("ssm")).secure_string
        return KeySource(self.settings, fetch)

    @cached_property
    def stream_notifier(self) -> Notifier:
        """The fan-out's pushes: short timeouts (see PUSH_CLIENT_CONFIG)."""
        endpoint = self.settings.management_endpoint()
        return Notifier(self._aws.client("apigatewaymanagementapi", endpoint_url=endpoint, config=PUSH_CLIENT_CONFIG))


    @cached_property
    def redis(self) -> Any:
        """One client (and its connection pool) for everything this process keeps in Redis."""
        if self.redis_client is not None:
            return self.redis_client
        import redis

        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=2, socket_connect_timeout=2)

    @cached_property
    def state(self) -> RedisState:
        return RedisState(self.redis, prefix=self.settings.redis_prefix)

    @cached_property
    def cluster_state(self) -> SimState:
        """The simulated cluster's pools, clock and signatures: shared by every container."""
        return RedisSimState(self.redis, prefix=self.settings.redis_prefix)

    @cached_property
    def book(self) -> RedisTriggerBook:
        """Waiting limit orders by pair, direction and price (a cache of the ``waiting`` index)."""
        return RedisTriggerBook(self.redis, prefix=self.settings.redis_prefix)

    @cached_property
    def sniper_book(self) -> RedisSniperBook:
        """Waiting sniper orders by the mint they watch (a cache of the ``waiting`` index)."""
        return RedisSniperBook(self.redis, prefix=self.settings.redis_prefix)

    @cached_property
    def waiting_books(self) -> WaitingBooks:
        return WaitingBooks(self.book, self.sniper_book)

    @cached_property
    def market(self) -> SimulatedMarket:
        s = self.settings
        return SimulatedMarket(
            MarketSettings(
                seed=s.market_seed,
                quote_latency_ms=s.quote_latency_ms,
                quote_timeout_rate=s.quote_timeout_rate,
                rpc_error_rate=s.rpc_error_rate,
            ),
            self.clock,
            state=self.cluster_state,
            on_change=self._market_changed,
            on_launch=self._launched,
        )

    @cached_property
    def market_watch(self) -> MarketWatch:
        """Publishes the market's changes where orders wait on them (the matcher's events)."""
        return MarketWatch(self.book, self.market_events, self.market.pair_of, self.clock)

    def _market_changed(self, changes: Sequence[PoolChange]) -> None:
        self.market_watch(changes)

    @cached_property
    def launch_watch(self) -> LaunchWatch:
        """Publishes a new pool's opening where sniper orders watch its mint."""
        return LaunchWatch(self.sniper_book, self.market_events, self.market.slot, self.clock)

    def _launched(self, launch: PoolLaunch) -> None:
        self.launch_watch(launch)

    @cached_property
    def matcher(self) -> Matcher:
        return Matcher(self.orders, self.book, self.router, self.queue, self.clock, sniper_book=self.sniper_book,
                       launches=self.market, events=self.market_events)

    @cached_property
    def chain(self) -> SimulatedChain:
        s = self.settings
        return SimulatedChain(
            self.market,
            self.clock,
            ChainSettings(
                confirm_latency_ms=s.swap_latency_ms,
                rpc_error_rate=s.rpc_error_rate,
                blockhash_expiry_rate=s.blockhash_expiry_rate,
                seed=s.market_seed,
            ),
        )

    @cached_property
    def router(self) -> Router:
        return Router(list(self.market.venues.values()), self.clock,
                      timeout_seconds=self.settings.quote_timeout_ms / 1000)

    @cached_property
    def fanout(self) -> Fanout:
        """Replies and snapshots to one connection."""
        return Fanout(self.notifier, self.orders, self.connections)

    @cached_property
    def stream_fanout(self) -> Fanout:
        """The orders table's stream to every subscriber."""
        return Fanout(self.stream_notifier, self.orders, self.connections)

    @cached_property
    def executor(self) -> Executor:
        s = self.settings
        return Executor(
            self.orders,
            self.router,
            self.chain,
            self.clock,
            max_attempts=s.max_attempts,
            retry_base_seconds=s.retry_base_seconds,
            confirm_poll_seconds=s.confirm_poll_ms / 1000,
            max_confirm_wait_seconds=s.confirm_wait_ms / 1000,
            dead_letter_wait_seconds=s.dead_letter_wait_ms / 1000,
            on_terminal=lambda order: self.state.remove_active(order.client_id, order.order_id),
            book=self.book,
            sniper_book=self.sniper_book,
            launches=self.market,
            events=self.market_events,
        )


_lock = threading.Lock()
_services: Services | None = None


def get_services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = Services(get_settings())
    return _services


def set_services(services: Services | None) -> None:
    global _services
    _services = services


def reset_services() -> None:
    get_settings.cache_clear()
    set_services(None)
