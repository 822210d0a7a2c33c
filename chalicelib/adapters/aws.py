"""One boto3 session for the process, built lazily; every AWS adapter gets its clients here.

Lazily, because importing the app must stay cheap (cold start) and because the local stack
sets the endpoint in the environment before the first call. ``AWS_ENDPOINT_URL`` selects
an emulator (the local stack's moto server, LocalStack), ``AWS_ENDPOINT_URL_<SERVICE>`` one
service's (the local stack serves DynamoDB and SQS from separate processes); unset, boto3 talks
to AWS. ``AWS_PARAMETER_VALIDATION=false`` skips botocore's client-side validation (the local
stack's setting: the emulator validates anyway); on AWS it stays on unless configured.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

from ..config import Settings

__all__ = ["PUSH_CLIENT_CONFIG", "AwsClients"]

_CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=2,
    read_timeout=10,
    max_pool_connections=32,  # the worker runs up to 10 orders at once, each with a few clients
)
# The fan-out's pushes: a slow or unreachable client must not hold a stream batch for long. One
# quick retry absorbs a transient throttle; past that the stream itself retries the record.
PUSH_CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 2, "mode": "standard"},
    connect_timeout=1,
    read_timeout=2,
    max_pool_connections=32,  # connections are pushed to in parallel (chalicelib/api/fanout.py)
)

_NO_VALIDATION = Config(parameter_validation=False)


class AwsClients:
    """Clients built on first use and shared (boto3 clients are thread-safe)."""

    def __init__(self, settings: Settings, session: boto3.session.Session | None = None) -> None:
        self._settings = settings
        self._session = session
        self._clients: dict[tuple[str, str | None, Config], Any] = {}
        self._lock = threading.Lock()

    @property
    def session(self) -> boto3.session.Session:
        with self._lock:
            if self._session is None:
                self._session = boto3.session.Session(region_name=self._settings.region)
            return self._session

    def client(self, service: str, endpoint_url: str | None = None, config: Config | None = None) -> Any:
        """One client per (service, endpoint, configuration); ``config`` replaces the default one."""
        endpoint = endpoint_url or self._settings.endpoint_for(service)
        config = config or _CLIENT_CONFIG
        key = (service, endpoint, config)
        client = self._clients.get(key)
        if client is None:
            session = self.session
            with self._lock:
                client = self._clients.get(key)
                if client is None:
                    if not self._settings.aws_parameter_validation:
                        config = config.merge(_NO_VALIDATION)
                    client = session.client(service, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]
                    self._clients[key] = client
        return client
