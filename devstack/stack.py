"""The whole stack on one machine: AWS emulator, Redis, WebSocket gateway, event-source pollers
(DynamoDB stream, SQS), REST API.

    with DevStack(rest_port=0, ws_port=0, env={"SWAP_LATENCY_MS": "0"}) as stack:
        print(stack.urls["rest"])

Start order: emulator → Redis → environment → resources (``infra.provision``) → the app →
WebSocket gateway → stream poller → SQS poller → REST last, so ``GET /health`` answers only once the
rest is up (and the stream poller reads from the stream's end before any order is written).
``stop()`` goes in reverse and puts ``os.environ`` back as it was.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from chalicelib.config import DEFAULT_API_KEYS

from .emulator import AwsEmulator
from .functions import Poller, Runtime, build_pollers, start_pollers, stop_pollers
from .http_server import bind
from .project import first_api_key
from .project import project_dir as _project_dir
from .redis_server import start_redis
from .rest import RestServer, chalice_config
from .ws_gateway import WebSocketGateway

__all__ = ["DevStack"]

log = logging.getLogger("devstack")



def _reset_app_state() -> None:
    """Fresh settings and clients for the next start in this process (the engine's app only)."""
    try:
        from chalicelib.api.services import reset_services
        from chalicelib.config import get_settings
    except ImportError:
        return
    get_settings.cache_clear()
    reset_services()


class DevStack:
    """Starts and stops every part of the local runtime; ``port=0`` picks a free port."""

    def __init__(self, rest_port: int = 8000, ws_port: int = 8001, aws_endpoint_url: str | None = None,
                 redis_url: str | None = None, app_module: str = "app", stage: str = "local",
                 api_keys: str | None = None, env: Mapping[str, str] | None = None,
                 ws_idle_timeout: float = 600, ws_max_duration: float = 7200,
                 project_dir: str | Path | None = None, host: str = "127.0.0.1", region: str = "us-east-1") -> None:
        self.rest_port = rest_port
        self.ws_port = ws_port
        self.stage = stage
        self.host = host
        self.region = region
        self.app_module_name = app_module
        self.project_dir = _project_dir(project_dir)
        self._aws_endpoint_url = aws_endpoint_url
        self._redis_url = redis_url
        self._api_keys = api_keys
        self._env = dict(env or {})
        self._ws_idle_timeout = ws_idle_timeout
        self._ws_max_duration = ws_max_duration
        self.app: Any = None
        self.module: ModuleType | None = None
        self._emulator: AwsEmulator | None = None
        self._stop_redis: Callable[[], None] | None = None
        self._ws_sock: socket.socket | None = None
        self._rest_sock: socket.socket | None = None
        self._gateway: WebSocketGateway | None = None
        self._runtime: Runtime | None = None
        self._pollers: list[tuple[str, Poller]] = []
        self._rest: RestServer | None = None
        self._saved_env: dict[str, str] | None = None
        self._added_path: str | None = None
        self._urls: dict[str, str] = {}

    # -- public ---------------------------------------------------------------------------------
    @property
    def urls(self) -> dict[str, str]:
        """``rest``, ``ws``, ``ws_public`` (the base of POST's ``wsUrl``), ``management``, ``aws``,
        ``redis`` and ``api_key`` once started."""
        return dict(self._urls)

    @property
    def running(self) -> bool:
        return self._rest is not None

    def start(self) -> DevStack:
        if self._saved_env is not None:
            raise RuntimeError("the stack is already started")
        self._saved_env = dict(os.environ)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stops every part in reverse order and restores ``os.environ``."""
        if self._saved_env is None:
            return
        rest, self._rest = self._rest, None
        pollers, self._pollers = self._pollers, []
        runtime, self._runtime = self._runtime, None
        gateway, self._gateway = self._gateway, None
        ws_sock, self._ws_sock = self._ws_sock, None
        rest_sock, self._rest_sock = self._rest_sock, None
        stop_redis, self._stop_redis = self._stop_redis, None
        emulator, self._emulator = self._emulator, None
        steps: list[tuple[str, Callable[[], None] | None]] = [
            ("REST API", rest.stop if rest else None),
            ("REST socket", rest_sock.close if rest_sock else None),  # the REST server closes it too
            ("event-source pollers", (lambda: stop_pollers(pollers)) if pollers else None),
            ("WebSocket gateway", gateway.stop if gateway else None),
            ("WebSocket socket", ws_sock.close if ws_sock else None),  # the gateway's server closes it too
            ("pollers' clients", runtime.close if runtime else None),
            ("app clients", _reset_app_state),
            ("Redis", stop_redis),
            ("AWS emulator", emulator.stop if emulator else None),
        ]
        for name, step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception:
                log.exception("stopping the %s failed", name)
        self._restore_env()
        _reset_app_state()
        if self._added_path is not None and self._added_path in sys.path:
            sys.path.remove(self._added_path)
        self._added_path = None
        self._urls = {}

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_forever(self) -> None:
        """Start, print where everything is, and serve until Ctrl-C (SIGINT) or SIGTERM."""
        self.start()
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            print(self.banner(), flush=True)
            while not stop.wait(0.5):
                pass
            print("stopping…", flush=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def banner(self) -> str:
        u = self._urls
        body = '{"tokenIn":"SOL","tokenOut":"USDC","amount":"1.5"}'
        return "\n".join([
            f"order engine: local stack, stage {self.stage}",
            f"  REST       {u['rest']}",
            f"  WebSocket  {u['ws']}/?apiKey={u['api_key']}",
            *([f"  wsUrl base {u['ws_public']} (WS_PUBLIC_URL)"] if u["ws_public"] != u["ws"] else []),
            f"  AWS        {u['aws']}{' (embedded moto)' if self._emulator and self._emulator.embedded else ''}",
            f"  Redis      {u['redis']}",
            f"  API key    {u['api_key']}",
            "Try:",
            f"  curl -s -X POST {u['rest']}/api/orders/execute -H 'x-api-key: {u['api_key']}' "
            f"-H 'content-type: application/json' -d '{body}'",
            "  order-engine submit --from SOL --to USDC --amount 1.5 --watch",
            "Ctrl-C stops.",
        ])

    # -- start ----------------------------------------------------------------------------------
    def _start(self) -> None:
        # Both ports first: a busy one is reported before anything else starts.
        self._rest_sock = bind(self.host, self.rest_port)
        self._ws_sock = bind(self.host, self.ws_port)
        self._emulator = AwsEmulator(self._aws_endpoint_url, host=self.host)
        endpoint = self._emulator.start()
        redis_url, self._stop_redis = start_redis(self._redis_url, host=self.host)
        ws_port = self._ws_sock.getsockname()[1]
        env = self._environment(endpoint, redis_url, ws_port)
        os.environ.update(env)
        if str(self.project_dir) not in sys.path:
            sys.path.insert(0, str(self.project_dir))
            self._added_path = str(self.project_dir)

        from infra.provision import provision

        provision(endpoint, env.get("AWS_REGION", self.region))
        _reset_app_state()
        self.module = self._import_app()
        self.app = self.module.app

        config = chalice_config(self.app, self.stage, self.project_dir)
        self._gateway = WebSocketGateway(
            self.app, self.host, stage=self.stage, sock=self._ws_sock, idle_timeout=self._ws_idle_timeout,
            max_duration=self._ws_max_duration, lambda_timeout=config.lambda_timeout or 60,
            lambda_memory_mb=config.lambda_memory_size or 128, region=env.get("AWS_REGION", self.region),
        )
        self._gateway.start()

        scoped = {source.name: config.scope(self.stage, source.name) for source in self.app.event_sources}
        self._runtime = Runtime(self.app, self.stage, env.get("AWS_REGION", self.region),
                                endpoints=dict.fromkeys(("sqs", "dynamodb", "dynamodbstreams"), endpoint),
                                scoped=scoped, parameter_validation=False)
        self._pollers = build_pollers(self._runtime)
        start_pollers(self._pollers)

        self._rest = RestServer(self.app, self.host, stage=self.stage, config=config, sock=self._rest_sock)
        self._rest.start()
        self._urls = {
            "rest": self._rest.url,
            "ws": self._gateway.url,
            "ws_public": env["WS_PUBLIC_URL"].rstrip("/"),
            "management": self._gateway.management_url,
            "aws": endpoint,
            "redis": redis_url,
            "api_key": first_api_key(env["API_KEYS"]),
        }

    def _environment(self, endpoint: str, redis_url: str, ws_port: int) -> dict[str, str]:
        """What the app reads: the stage's variables from .chalice/config.json, unless already set;
        the stack's own endpoints; then ``env`` given to the constructor, which wins."""
        current = os.environ
        from_config = chalice_config(None, self.stage, self.project_dir).environment_variables
        # The stage's endpoints are for `chalice local` against `order-engine services`; this stack
        # serves every service from one emulator of its own.
        env = {name: str(value) for name, value in from_config.items()
               if name not in current and not name.startswith("AWS_ENDPOINT_URL")}
        embedded = self._emulator is not None and self._emulator.embedded
        env.update({
            "AWS_ENDPOINT_URL": endpoint,
            "REDIS_URL": redis_url,
            "STAGE": self.stage,
            "AWS_PARAMETER_VALIDATION": "false",  # the emulator validates every request anyway
            "WS_MANAGEMENT_ENDPOINT": f"http://{self.host}:{ws_port}/{self.stage}",
            # The shell's, if set (a proxy or tunnel in front of the gateway); not the config
            # file's: the stack knows where its own gateway listens. The gateway stays on WS_PORT.
            "WS_PUBLIC_URL": current.get("WS_PUBLIC_URL") or f"ws://{self.host}:{ws_port}",
            "API_KEYS": self._api_keys or current.get("API_KEYS") or from_config.get("API_KEYS") or DEFAULT_API_KEYS,
        })
        if embedded or not (current.get("AWS_REGION") or current.get("AWS_DEFAULT_REGION")):
            env.update(AWS_REGION=self.region, AWS_DEFAULT_REGION=self.region)
        if embedded or not current.get("AWS_ACCESS_KEY_ID"):
            env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
        env.update(self._env)
        if "AWS_REGION" not in env:
            env["AWS_REGION"] = current.get("AWS_REGION") or current.get("AWS_DEFAULT_REGION") or self.region
        return env

    def _import_app(self) -> ModuleType:
        """Imported once per process; a later start reuses it. Not reloaded: a reloaded app.py would
        register the same blueprints on a second app, and Chalice's first registration consumes
        each route's ``methods`` (every route would become GET)."""
        module = sys.modules.get(self.app_module_name)
        return module if module is not None else importlib.import_module(self.app_module_name)

    def _restore_env(self) -> None:
        saved, self._saved_env = self._saved_env, None
        if saved is None:
            return
        for name in [name for name in os.environ if name not in saved]:
            del os.environ[name]
        for name, value in saved.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
