"""Settings from the environment. The only module that reads ``os.environ``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = ["DEFAULT_API_KEYS", "LOCAL_STAGE", "ConfigurationError", "Settings", "get_settings", "parse_api_keys"]

DEFAULT_API_KEYS = "local-dev-key:local"
LOCAL_STAGE = "local"


class ConfigurationError(RuntimeError):
    """The environment cannot run the engine safely; the function refuses to start."""


def parse_api_keys(raw: str) -> dict[str, str]:
    """``key1:clientA,key2:clientB`` → {key: clientId}. A key without a client names itself."""
    keys: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, _, client = part.partition(":")
        keys[key.strip()] = client.strip() or key.strip()
    return keys


def _range_ms(raw: str) -> tuple[int, int]:
    """``"2000-3000"`` or ``"2000,3000"`` (a range) or ``"500"`` (fixed), in milliseconds."""
    low, _, high = raw.replace(",", "-").partition("-")
    lo, hi = int(low), int(high) if high else int(low)
    if not 0 <= lo <= hi:
        raise ValueError(f"bad millisecond range {raw!r}: want LOW-HIGH with 0 <= LOW <= HIGH")
    return lo, hi


@dataclass(frozen=True)
class Settings:
    stage: str = "local"
    region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    # Per-service endpoints, as the AWS SDKs read them (``AWS_ENDPOINT_URL_DYNAMODB``,
    # ``AWS_ENDPOINT_URL_SQS``, …), keyed by the variable's suffix in lower case (``dynamodb``,
    # ``dynamodb_streams``, ``sqs``); each wins over ``aws_endpoint_url`` for its service.
    aws_endpoint_urls: Mapping[str, str] = field(default_factory=dict)
    # botocore's client-side validation of every request against the service model. An emulator
    # validates on its side anyway; the local stack turns it off (AWS_PARAMETER_VALIDATION=false).
    aws_parameter_validation: bool = True
    orders_table: str = "order-engine-orders"
    # The orders table's stream, which the fan-out Lambda reads; see orders_stream_arn().
    orders_table_stream_arn: str | None = None
    connections_table: str = "order-engine-connections"
    orders_queue: str = "order-engine-orders"
    orders_dlq: str = "order-engine-orders-dlq"
    market_events_queue: str = "order-engine-market-events"  # swaps and ticks, for the matcher
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "oe"  # every key the engine writes starts with "<prefix>:"
    api_keys: Mapping[str, str] = field(default_factory=lambda: parse_api_keys(DEFAULT_API_KEYS))
    # An SSM Parameter Store SecureString holding ``key:clientId,…``; it replaces ``api_keys``.
    api_keys_parameter: str | None = None
    api_keys_max_age_seconds: int = 300
    rate_limit_per_min: int = 100
    max_body_bytes: int = 16 * 1024
    # WebSocket: where clients connect, and where the management API (@connections) lives.
    ws_public_url: str = "ws://127.0.0.1:8001"
    ws_management_endpoint: str | None = None
    ws_api_id: str | None = None
    connection_ttl_seconds: int = 2 * 60 * 60
    # Retries: visibility = base * 2**(receiveCount-1); the third failed receive is final.
    retry_base_seconds: int = 2
    max_attempts: int = 3
    # Simulated venues and chain.
    market_seed: int = 7
    quote_latency_ms: tuple[int, int] = (20, 80)
    swap_latency_ms: tuple[int, int] = (2000, 3000)
    quote_timeout_rate: float = 0.0
    quote_timeout_ms: int = 2_000  # a venue slower than this is left out of the route
    rpc_error_rate: float = 0.0
    blockhash_expiry_rate: float = 0.0
    confirm_poll_ms: int = 200
    confirm_wait_ms: int = 20_000  # how long one invocation waits for a landing (the worker's timeout is 60 s)
    dead_letter_wait_ms: int = 5_000  # how long the dead-letter path waits for a landing
    # The market's own token launches, one every so many seconds (0: none), made by the market tick.
    launch_every_seconds: float = 0.0
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        d = cls()
        stage = e.get("STAGE", d.stage)
        parameter = e.get("API_KEYS_PARAMETER") or None
        return cls(
            stage=stage,
            region=e.get("AWS_REGION", e.get("AWS_DEFAULT_REGION", d.region)),
            aws_endpoint_url=e.get("AWS_ENDPOINT_URL") or None,
            aws_endpoint_urls=_service_endpoints(e),
            aws_parameter_validation=_flag(e.get("AWS_PARAMETER_VALIDATION"), d.aws_parameter_validation),
            orders_table=e.get("ORDERS_TABLE", d.orders_table),
            orders_table_stream_arn=e.get("ORDERS_TABLE_STREAM_ARN") or None,
            connections_table=e.get("CONNECTIONS_TABLE", d.connections_table),
            orders_queue=e.get("ORDERS_QUEUE", d.orders_queue),
            orders_dlq=e.get("ORDERS_DLQ", d.orders_dlq),
            market_events_queue=e.get("MARKET_EVENTS_QUEUE", d.market_events_queue),
            redis_url=e.get("REDIS_URL", d.redis_url),
            api_keys=_api_keys(stage, e.get("API_KEYS")),
            api_keys_parameter=parameter,
            api_keys_max_age_seconds=int(e.get("API_KEYS_MAX_AGE_SECONDS", d.api_keys_max_age_seconds)),
            redis_prefix=e.get("REDIS_PREFIX", d.redis_prefix).rstrip(":") or d.redis_prefix,
            rate_limit_per_min=int(e.get("RATE_LIMIT_PER_MIN", d.rate_limit_per_min)),
            ws_public_url=e.get("WS_PUBLIC_URL", d.ws_public_url).rstrip("/"),
            ws_management_endpoint=e.get("WS_MANAGEMENT_ENDPOINT") or None,
            ws_api_id=e.get("WS_API_ID") or None,
            connection_ttl_seconds=int(e.get("CONNECTION_TTL_SECONDS", d.connection_ttl_seconds)),
            retry_base_seconds=int(e.get("RETRY_BASE_SECONDS", d.retry_base_seconds)),
            max_attempts=int(e.get("MAX_ATTEMPTS", d.max_attempts)),
            market_seed=int(e.get("MARKET_SEED", d.market_seed)),
            quote_latency_ms=_range_ms(e["QUOTE_LATENCY_MS"]) if "QUOTE_LATENCY_MS" in e else d.quote_latency_ms,
            swap_latency_ms=_range_ms(e["SWAP_LATENCY_MS"]) if "SWAP_LATENCY_MS" in e else d.swap_latency_ms,
            quote_timeout_rate=float(e.get("QUOTE_TIMEOUT_RATE", d.quote_timeout_rate)),
            quote_timeout_ms=int(e.get("QUOTE_TIMEOUT_MS", d.quote_timeout_ms)),
            rpc_error_rate=float(e.get("RPC_ERROR_RATE", d.rpc_error_rate)),
            blockhash_expiry_rate=float(e.get("BLOCKHASH_EXPIRY_RATE", d.blockhash_expiry_rate)),
            confirm_poll_ms=int(e.get("CONFIRM_POLL_MS", d.confirm_poll_ms)),
            confirm_wait_ms=int(e.get("CONFIRM_WAIT_MS", d.confirm_wait_ms)),
            dead_letter_wait_ms=int(e.get("DEAD_LETTER_WAIT_MS", d.dead_letter_wait_ms)),
            launch_every_seconds=float(e.get("LAUNCH_EVERY_SECONDS") or d.launch_every_seconds),
            log_level=e.get("LOG_LEVEL", d.log_level).upper(),
        )

    def key_problem(self) -> str | None:
        """Why this configuration must refuse every request, or None. Keys fail closed: any stage
        but ``local`` needs keys of its own, and never the public one the README prints."""
        if self.api_keys_parameter:
            return None
        if not self.api_keys:
            return (f"stage {self.stage!r} has no API keys: set API_KEYS (key1:clientA,key2:clientB) or "
                    "API_KEYS_PARAMETER (the name of an SSM SecureString parameter holding them)")
        public = sorted(set(parse_api_keys(DEFAULT_API_KEYS)) & set(self.api_keys))
        if self.stage != LOCAL_STAGE and public:
            return (f"stage {self.stage!r} lists the public local key {public[0]!r} in API_KEYS; "
                    "it is printed in the README and accepted only on the local stage")
        return None

    def endpoint_for(self, service: str) -> str | None:
        """Where a boto3 ``service`` (``dynamodb``, ``dynamodbstreams``, ``sqs``, …) is reached:
        its own ``AWS_ENDPOINT_URL_<SERVICE>`` if set, else ``AWS_ENDPOINT_URL``, else AWS (None).
        The suffix is the SDKs' (the service id in upper case, spaces as underscores)."""
        key = _ENDPOINT_SUFFIXES.get(service, service.replace("-", "_"))
        return self.aws_endpoint_urls.get(key) or self.aws_endpoint_url

    def orders_stream_arn(self) -> str:
        """The fan-out's event source. On AWS the package sets the table's real stream; the local
        default names only the table (its stream label is a placeholder), and the local stack's
        poller follows that table's current stream, which a re-provisioned table renews."""
        return self.orders_table_stream_arn or (
            f"arn:aws:dynamodb:{self.region}:000000000000:table/{self.orders_table}/stream/local")

    @property
    def simulation_routes(self) -> bool:
        """``POST /api/sim/launches`` and the like: the local and dev stages only."""
        return self.stage in ("local", "dev")

    def management_endpoint(self) -> str:
        """The @connections endpoint: explicit locally, derived from the API id on AWS."""
        if self.ws_management_endpoint:
            return self.ws_management_endpoint.rstrip("/")
        if self.ws_api_id:
            return f"https://{self.ws_api_id}.execute-api.{self.region}.amazonaws.com/{self.stage}"
        raise RuntimeError("set WS_MANAGEMENT_ENDPOINT or WS_API_ID to push WebSocket messages")


_ENDPOINT_PREFIX = "AWS_ENDPOINT_URL_"
# boto3 service names whose SDK service id differs from the name (``DynamoDB Streams``).
_ENDPOINT_SUFFIXES = {"dynamodbstreams": "dynamodb_streams"}


def _service_endpoints(env: Mapping[str, str]) -> dict[str, str]:
    """``AWS_ENDPOINT_URL_<SERVICE>`` variables that are set, keyed by ``<service>`` in lower case."""
    return {name[len(_ENDPOINT_PREFIX):].lower(): value for name, value in env.items()
            if name.startswith(_ENDPOINT_PREFIX) and len(name) > len(_ENDPOINT_PREFIX) and value}


def _flag(raw: str | None, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"bad boolean {raw!r}: want true or false")


def _api_keys(stage: str, raw: str | None) -> dict[str, str]:
    """The keys configured for a stage. Only the local stage falls back to the public
    ``local-dev-key``; see ``Settings.key_problem`` for what the others must have."""
    if raw is None or not raw.strip():
        return parse_api_keys(DEFAULT_API_KEYS) if stage == LOCAL_STAGE else {}
    return parse_api_keys(raw)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
