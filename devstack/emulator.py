"""What stands in for AWS locally: moto's server in a thread, and the Lambda runtime's context object.

moto keeps one set of backends per process: two emulators started in the same process share
their queues and tables, and ``reset()`` empties both.

DynamoDB applies the writes to one item one at a time, so a conditional write is atomic; moto's
DynamoDB takes no lock, and two requests served at once by its threaded server can interleave
inside one item (both pass their conditions, or one reads the item while the other changes it:
"dictionary changed size during iteration" while it builds a stream record). The emulator
therefore serves DynamoDB's requests one at a time (``SerialDynamoDB``), and everything else
concurrently.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from chalice.local import LambdaContext as _ChaliceLambdaContext

__all__ = ["ACCOUNT_ID", "AwsEmulator", "LambdaContext", "PriorityLock", "SerialDynamoDB"]

ACCOUNT_ID = "123456789012"  # moto's default account
log = logging.getLogger("devstack.emulator")


class PriorityLock:
    """A lock whose waiters are served by priority (lower first), then in arrival order."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: list[tuple[int, int, threading.Event]] = []
        self._arrivals = 0

    def acquire(self, priority: int = 0) -> None:
        with self._mutex:
            if not self._held and not self._waiting:
                self._held = True
                return
            self._arrivals += 1
            turn = threading.Event()
            heapq.heappush(self._waiting, (priority, self._arrivals, turn))
        turn.wait()  # release() hands the lock over: held stays True

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                heapq.heappop(self._waiting)[2].set()
            else:
                self._held = False

    def __enter__(self) -> PriorityLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# Who waits least for DynamoDB, by the ``app/<id>`` that botocore adds to its User-Agent from
# AWS_SDK_UA_APP_ID (the supervisor gives each part its name): intake first, then the socket's
# handlers, then the workers and the fan-out. Execution queues behind execution, not intake.
PRIORITIES = {"app/rest": 0, "app/gateway": 1}
_LOWEST = 2


def _priority(environ: dict[str, Any]) -> int:
    agent = str(environ.get("HTTP_USER_AGENT", ""))
    return min((p for tag, p in PRIORITIES.items() if tag in agent), default=_LOWEST)


class SerialDynamoDB:
    """WSGI middleware: DynamoDB (and DynamoDB Streams) requests one at a time, the rest as they come.

    Waiting requests are served by the priority of the part that sent them (``PRIORITIES``)."""

    _TARGETS = ("DynamoDB_", "DynamoDBStreams_")

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self.lock = PriorityLock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(self._TARGETS):
            return self._app(environ, start_response)
        self.lock.acquire(_priority(environ))
        try:
            return list(self._app(environ, start_response))  # the whole response inside the lock
        finally:
            self.lock.release()


class AwsEmulator:
    """moto's server on 127.0.0.1 (a free port by default), unless an endpoint is given.

    With ``endpoint_url`` (LocalStack, real AWS) nothing is started and ``stop()`` does nothing.
    """

    def __init__(self, endpoint_url: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._given = endpoint_url.rstrip("/") if endpoint_url else None
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._endpoint: str | None = self._given

    @property
    def embedded(self) -> bool:
        return self._given is None

    @property
    def endpoint_url(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("the emulator is not started")
        return self._endpoint

    def start(self) -> str:
        """Start moto's server (if no endpoint was given); returns the endpoint URL."""
        if self._given is not None or self._server is not None:
            return self.endpoint_url
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        app = SerialDynamoDB(DomainDispatcherApplication(create_backend_app))
        server = make_server(self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=server.serve_forever, name="devstack-moto", daemon=True)
        self._thread.start()
        host, port = server.server_address[:2]
        self._server = server
        self._endpoint = f"http://{host}:{port}"
        log.info("AWS emulator (moto) on %s", self._endpoint)
        return self._endpoint

    def reset(self) -> None:
        """Empty every moto backend of this process (embedded emulator only)."""
        if self._server is None:
            raise RuntimeError("reset() needs the embedded emulator")
        import httpx  # here only: the emulator's processes import this module and never reset

        httpx.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        self._endpoint = self._given


class LambdaContext(_ChaliceLambdaContext):
    """The context object Lambda passes to a handler, with the ARN and log names filled in."""

    def __init__(self, function_name: str, memory_mb: int = 128, timeout_seconds: float = 60,
                 region: str = "us-east-1") -> None:
        super().__init__(function_name=function_name, memory_size=memory_mb,
                         max_runtime_ms=int(timeout_seconds * 1000))
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
