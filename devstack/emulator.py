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

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from chalice.local import LambdaContext as _ChaliceLambdaContext

__all__ = ["ACCOUNT_ID", "AwsEmulator", "LambdaContext", "SerialDynamoDB"]

ACCOUNT_ID = "123456789012"  # moto's default account
log = logging.getLogger("devstack.emulator")


class SerialDynamoDB:
    """WSGI middleware: DynamoDB (and DynamoDB Streams) requests one at a time, the rest as they come."""

    _TARGETS = ("DynamoDB_", "DynamoDBStreams_")

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith(self._TARGETS):
            return self._app(environ, start_response)
        with self.lock:
            return list(self._app(environ, start_response))  # the whole response inside the lock


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
