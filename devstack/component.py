"""One part of the local stack in a process of its own: ``python -m devstack.component NAME``.

Started by the supervisor (``devstack.supervise``), which binds every port first and hands the
socket over as an inherited file descriptor (``DEVSTACK_SOCKET_FD``), and reads this process's
progress as JSON lines on ``DEVSTACK_STATUS_FD``:

- ``dynamodb`` / ``sqs``: moto's server for that service (``devstack.moto_service``), served by
  granian (one worker process); ``DEVSTACK_HOST``/``DEVSTACK_PORT`` (granian binds with
  ``SO_REUSEPORT`` next to the supervisor's socket, which holds the port until then);
- ``redis``: the embedded Redis (fakeredis), with its keys saved under ``DEVSTACK_STATE_DIR``;
- ``gateway``, ``functions``, ``rest``: the app's WebSocket gateway, its event-source pollers,
  its REST API. Each imports the app, builds what it can, says ``prepared``, and starts when the
  supervisor writes ``go`` on its standard input (once the resources exist);
- ``apps``: the app's parts above, forked from one process that imported the app and their
  servers once (``DEVSTACK_APP_PARTS`` says which parts and the descriptors each one gets): three
  imports of the same app were a third of the stack's CPU at its start. It stays their parent,
  reaps them and reports each one's pid and exit status on its own status descriptor.

SIGTERM or SIGINT stops the part cleanly; so does the supervisor's death (``orphan_guard``).
With ``DEVSTACK_COUNT_CALLS`` set, the app's parts count every AWS call and Redis command
(``bench.counters``) and write the counts to ``DEVSTACK_COUNTS_DIR`` on SIGUSR1.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from .supervise import orphan_guard

log = logging.getLogger("devstack.component")
_keep: list[Any] = []


class _Status:
    def __init__(self) -> None:
        fd = os.environ.get("DEVSTACK_STATUS_FD")
        self._out = os.fdopen(int(fd), "w", buffering=1) if fd else None
        self._lock = threading.Lock()

    def say(self, state: str, **info: Any) -> None:
        if self._out is None:
            return
        with self._lock:
            try:
                self._out.write(json.dumps({"state": state, **info}) + "\n")
            except OSError:
                pass


def _socket() -> socket.socket:
    return socket.socket(fileno=int(os.environ["DEVSTACK_SOCKET_FD"]))


def _stop_event() -> threading.Event:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    return stop


# -- the emulator ----------------------------------------------------------------------------------
def run_emulator(service: str) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    os.environ["DEVSTACK_MOTO_SERVICE"] = service
    os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "1")  # no CORS headers computed per request
    # Threads per worker: every request waiting for DynamoDB's turn holds one (the workers send up
    # to 100 at once), and intake can only jump the queue from inside the app; SQS holds one per
    # long poll.
    threads = 128 if service == "dynamodb" else 32
    Granian("devstack.moto_service:app", address=os.environ.get("DEVSTACK_HOST", "127.0.0.1"),
            port=int(os.environ["DEVSTACK_PORT"]), interface=Interfaces.WSGI, workers=1,
            blocking_threads=threads, log_enabled=False,
            workers_kill_timeout=10).serve()
    return 0


# -- Redis -----------------------------------------------------------------------------------------
def run_redis(status: _Status) -> int:
    import fakeredis

    from .redis_server import embedded_server
    from .state import Snapshotter, dump_redis, load_redis, restore

    server = embedded_server(sock=_socket())
    local = fakeredis.FakeRedis(server=server.fake_server)  # the same keys, without a socket
    state = os.environ.get("DEVSTACK_STATE_DIR")
    snapshots = None
    if state:
        path = Path(state) / "redis.json"
        restored = restore(path, "redis", lambda document: load_redis(local, document))
        if restored:
            status.say("restored", what=restored)
        snapshots = Snapshotter(path, "redis", lambda: dump_redis(local), lambda: True)
        snapshots.start()
    stop = _stop_event()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                               name="devstack-redis", daemon=True)
    serving.start()
    status.say("ready")
    stop.wait()
    server.shutdown()
    server.server_close()
    if snapshots is not None:
        snapshots.stop()
    return 0


# -- the app's parts -------------------------------------------------------------------------------
def _count_calls(name: str) -> None:
    """Count this process's AWS calls and Redis commands; SIGUSR1 writes them to a file."""
    from bench.counters import CallCounter

    counter = CallCounter()
    installed = counter.installed()
    installed.__enter__()  # for the life of the process
    _keep.append(installed)  # a context manager collected would uninstall the counter
    folder = Path(os.environ["DEVSTACK_COUNTS_DIR"])

    def dump(signum: int, frame: FrameType | None) -> None:
        snapshot = counter.snapshot()
        snapshot["aws"] = [[service, op, n] for (service, op), n in snapshot["aws"].items()]
        tmp = folder / f".{name}-{os.getpid()}.json.tmp"
        tmp.write_text(json.dumps(snapshot))
        os.replace(tmp, folder / f"{name}-{os.getpid()}.json")

    signal.signal(signal.SIGUSR1, dump)


def _project_dir() -> Path:
    return Path(os.environ.get("DEVSTACK_PROJECT_DIR", "."))


def _load_app() -> Any:
    """The app the supervisor names (``DEVSTACK_PROJECT_DIR``, ``DEVSTACK_APP_MODULE``)."""
    project_dir = str(_project_dir())
    if project_dir not in sys.path:
        sys.path.insert(0, project_dir)
    import importlib

    return importlib.import_module(os.environ.get("DEVSTACK_APP_MODULE", "app")).app


def _log_as(name: str, force: bool = False) -> None:
    """This process's log lines, each led by the part's name."""
    logging.basicConfig(level=os.environ.get("DEVSTACK_LOG_LEVEL", "WARNING"), force=force,
                        format=f"{name}: %(levelname)s %(name)s: %(message)s")


def run_app_part(name: str, status: _Status) -> int:
    """Imports the app and what this part needs (nothing the other parts need), builds what can
    be built before the resources exist, says ``prepared``, and starts on ``go``."""
    from chalicelib.config import get_settings

    from .project import chalice_config

    if name not in ("gateway", "rest", "functions"):
        raise SystemExit(f"unknown part {name!r}")
    stop = _stop_event()
    if os.environ.get("DEVSTACK_COUNT_CALLS"):
        _count_calls(name)
    stage = os.environ.get("STAGE", "local")
    host = os.environ.get("DEVSTACK_HOST", "127.0.0.1")
    app = _load_app()
    config = chalice_config(app, stage, _project_dir())
    settings = get_settings()
    start: Any
    stopper: Any
    if name == "gateway":
        from .ws_gateway import WebSocketGateway

        gateway = WebSocketGateway(
            app, host, stage=stage, sock=_socket(), lambda_timeout=config.lambda_timeout or 60,
            lambda_memory_mb=config.lambda_memory_size or 128, region=settings.region,
            idle_timeout=float(os.environ.get("DEVSTACK_WS_IDLE_TIMEOUT", 600)),
            max_duration=float(os.environ.get("DEVSTACK_WS_MAX_DURATION", 7200)),
        )
        start, stopper = gateway.start, gateway.stop
    elif name == "rest":
        from .rest import RestServer

        rest = RestServer(app, host, stage=stage, config=config, sock=_socket())
        start, stopper = rest.start, rest.stop
    else:
        from .functions import Runtime, build_pollers, start_pollers, stop_pollers

        scoped = {source.name: config.scope(stage, source.name) for source in app.event_sources}
        runtime = Runtime(app, stage, settings.region,
                          endpoints={s: settings.endpoint_for(s) for s in ("sqs", "dynamodb", "dynamodbstreams")},
                          scoped=scoped, parameter_validation=settings.aws_parameter_validation)
        pollers = build_pollers(runtime)  # clients and pollers, no call yet: the resources come later

        def start() -> None:
            start_pollers(pollers)

        def stopper() -> None:
            stop_pollers(pollers)
            runtime.close()
    status.say("prepared")
    if sys.stdin.readline().strip() != "go":  # the supervisor is gone, or stopping already
        return 0
    start()
    status.say("ready")
    stop.wait()
    stopper()
    return 0


def run_app_parts(status: _Status) -> int:
    """The app's parts, forked from this process once it has imported them (see the module's notes).

    Nothing here starts a thread before the forks, so each child starts as a copy of one thread.
    Each child gets its own session (a process group the supervisor can kill), its status and
    socket descriptors, its ``go`` pipe as standard input, and its name as botocore's app id,
    which is read when a client is built, after the fork (the DynamoDB emulator serves intake
    first by it)."""
    plan: dict[str, dict[str, int]] = json.loads(os.environ["DEVSTACK_APP_PARTS"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping is the supervisor's, part by part
    _load_app()
    from . import functions, rest, ws_gateway  # noqa: F401 (imported once, for every child)

    if threading.active_count() != 1:
        raise SystemExit("the app's parts cannot be forked: a thread was started while importing the app")
    fds = {fd for part in plan.values() for fd in part.values()}
    own_status = os.environ.get("DEVSTACK_STATUS_FD")
    children: dict[int, str] = {}
    for name, part in plan.items():
        pid = os.fork()
        if pid == 0:  # the part
            try:
                os.setsid()
                with open("/proc/self/comm", "w") as comm:  # its name in ps -o comm and top
                    comm.write(f"oe-{name}")
                for fd in fds - set(part.values()) | ({int(own_status)} if own_status else set()):
                    os.close(fd)
                os.dup2(part["go"], 0)
                os.close(part["go"])
                sys.stdin = os.fdopen(0, "r", closefd=False)
                os.environ.update({"DEVSTACK_STATUS_FD": str(part["status"]), "AWS_SDK_UA_APP_ID": name})
                if "socket" in part:
                    os.environ["DEVSTACK_SOCKET_FD"] = str(part["socket"])
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _log_as(name, force=True)
                orphan_guard()  # this process's parent: it dies with the supervisor
                code = run_app_part(name, _Status())
            except BaseException:
                log.exception("the %s part failed", name)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        children[pid] = name
        status.say("forked", part=name, pid=pid)
    for fd in fds:
        os.close(fd)
    orphan_guard()
    while children:
        try:
            pid, raw = os.wait()
        except ChildProcessError:
            break
        name = children.pop(pid, "")
        if name:
            status.say("exited", part=name, status=os.waitstatus_to_exitcode(raw))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m devstack.component NAME")
    name = args[0]
    _log_as(name)
    if name == "apps":  # its guard starts after the forks: no thread may run before them
        return run_app_parts(_Status())
    orphan_guard()
    if name in ("dynamodb", "sqs"):
        return run_emulator(name)
    status = _Status()
    if name == "redis":
        return run_redis(status)
    return run_app_part(name, status)


if __name__ == "__main__":
    sys.exit(main())
