"""What stands in for AWS locally: moto's server in a thread, and the Lambda runtime's context object.

moto keeps one set of backends per process: two emulators started in the same process share
their queues and tables, and ``reset()`` empties both.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import httpx
from chalice.local import LambdaContext as _ChaliceLambdaContext

__all__ = ["ACCOUNT_ID", "AwsEmulator", "LambdaContext"]

ACCOUNT_ID = "123456789012"  # moto's default account
log = logging.getLogger("devstack.emulator")


class AwsEmulator:
    """moto's server on 127.0.0.1 (a free port by default), unless an endpoint is given.

    With ``endpoint_url`` (LocalStack, real AWS) nothing is started and ``stop()`` does nothing.
    """

    def __init__(self, endpoint_url: str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self._given = endpoint_url.rstrip("/") if endpoint_url else None
        self._host = host
        self._port = port
        self._server: Any = None
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
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
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
        if server is None:
            return
        server.stop()
        # ThreadedMotoServer.stop() shuts the loop down but leaves the listening socket open.
        wsgi_server = getattr(server, "_server", None)
        if wsgi_server is not None:
            wsgi_server.server_close()
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
