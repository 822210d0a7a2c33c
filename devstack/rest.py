"""The app's REST routes on ``host:port`` through Chalice's local API Gateway, one thread per request.

Unlike ``chalice local`` this sets no environment variables: the stack has set them already.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalChalice, LocalDevServer, ThreadedHTTPServer

__all__ = ["RestServer", "chalice_config"]

log = logging.getLogger("devstack.rest")


def chalice_config(app: Any, stage: str, project_dir: str | Path | None = None,
                   function_name: str = "api_handler") -> Config:
    """Chalice's config for ``stage``, read from ``{project_dir}/.chalice/config.json`` when present."""
    from_disk: dict[str, Any] = {}
    if project_dir is not None:
        path = Path(project_dir) / ".chalice" / "config.json"
        if path.is_file():
            from_disk = json.loads(path.read_text(encoding="utf-8"))
    params: dict[str, Any] = {"chalice_app": app, "app_name": getattr(app, "app_name", "app")}
    if project_dir is not None:
        params["project_dir"] = str(project_dir)
    return Config(chalice_stage=stage, function_name=function_name, user_provided_params=params,
                  config_from_disk=from_disk)


class _Server(ThreadedHTTPServer):
    """Chalice's threaded server, made to close its open connections and join their threads on stop."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._requests: set[socket.socket] = set()
        self._requests_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._requests_lock:
            self._requests.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._requests_lock:
            self._requests.discard(request)
        super().shutdown_request(request)

    def close_open_requests(self) -> None:
        """Ends kept-alive connections so their threads return."""
        with self._requests_lock:
            requests = list(self._requests)
        for request in requests:
            try:
                request.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(ChaliceRequestHandler):
    # http.server writes the status line and headers, then the body: with Nagle's algorithm on,
    # a kept-alive client's delayed ACK holds the body back ~40 ms on every response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class RestServer:
    """Serves ``app``'s routes; ``port=0`` picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, stage: str = "local",
                 project_dir: str | Path | None = None, config: Config | None = None) -> None:
        self.app = app
        self._host = host
        self._port = port
        self._config = config or chalice_config(app, stage, project_dir)
        self._server: LocalDevServer | None = None
        self._thread: threading.Thread | None = None
        self._app_class: type | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the REST server is already started")
        server = LocalDevServer(self.app, self._config, self._host, self._port, handler_cls=_Handler,
                                server_cls=_Server)
        if not isinstance(self.app, LocalChalice):
            # What chalice.local.create_local_server does: one current_request per thread.
            self._app_class = self.app.__class__
            self.app.__class__ = type("LocalApp", (LocalChalice, self.app.__class__), {})
        self._port = server.server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="devstack-rest", daemon=True)
        self._thread.start()
        log.info("REST API on %s", self.url)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        http_server = server.server
        assert isinstance(http_server, _Server)
        http_server.shutdown()
        http_server.close_open_requests()
        http_server.server_close()  # joins the request threads
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._app_class is not None:
            self.app.__class__, self._app_class = self._app_class, None

    def __enter__(self) -> RestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
