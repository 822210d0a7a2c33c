"""``order-engine run`` and ``order-engine services``: the local stack as processes under one
supervisor, so that the work spreads over every core and intake never waits behind execution.

    supervisor (this process): binds every port, starts the parts, provisions, restores, stops
    ├── dynamodb   moto: DynamoDB + DynamoDB Streams, one request at a time (+ SSM and the rest)
    ├── sqs        moto: SQS, requests concurrently (a long poll holds nothing up)
    ├── redis      the embedded Redis, only when no Redis answers at REDIS_URL / 127.0.0.1:6379
    ├── apps       imports the app once and forks the three parts below (see ``devstack.component``)
    │   ├── gateway    the WebSocket API and its @connections management API (the app's ws handlers)
    │   ├── functions  the event-source pollers: SQS, the orders table's stream (the app's workers)
    │   └── rest       the REST API (not under ``services``: ``chalice local --stage local`` serves it)

Start: every port is bound first (a busy one is reported at once, naming its setting) and
handed to its part; every part starts at once, ``apps`` importing the app meanwhile and forking
its parts (each is signalled and waited for as the others are; ``apps`` reports its exit); once
the emulators answer, the resources are provisioned (``infra.provision``, direct API calls) and
the saved state restored; then the gateway and the pollers start, and the REST API last, so
``/health`` answers 200 only when everything is up.

Stop (Ctrl-C, SIGTERM): the REST API first, then the gateway and the pollers (no more writes),
then each part saves its state, then Redis and the emulators. A part that dies on its own is
reported, and the whole stack stops with it (exit status 1): a stack with a part missing would
look up and lose work; ``make run`` again restores the saved state.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

__all__ = ["PartFailedError", "StackError", "Supervisor", "orphan_guard"]

log = logging.getLogger("devstack.supervise")

START_TIMEOUT = 60.0
# The app's three parts forked from one import of the app (``devstack.component``'s ``apps``) on
# Linux (elsewhere a fork without exec is not safe once some system libraries are loaded);
# DEVSTACK_FORK_APP_PARTS=0 starts each with its own interpreter instead.
FORK_APP_PARTS = sys.platform == "linux" and os.environ.get("DEVSTACK_FORK_APP_PARTS", "1") != "0"
STOP_TIMEOUT = 20.0
RESUME_DELAY_SECONDS = 2  # a re-sent order waits for the message that may still carry it


class StackError(RuntimeError):
    """The stack cannot start or run; the message says why and which setting to change."""


class PartFailedError(StackError):
    """A part of the stack exited on its own."""


def orphan_guard(interval: float = 0.5) -> None:
    """Stop this process (SIGTERM to itself) when its parent dies: a supervisor killed with -9
    leaves no part running."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(STOP_TIMEOUT)
                os._exit(1)

    threading.Thread(target=watch, name="devstack-orphan-guard", daemon=True).start()


def bind_port(host: str, port: int, setting: str, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket (not listening yet); a busy port is a StackError naming ``setting``.

    ``reuse_port``: the socket only holds the port for a server that binds it itself (granian, with
    ``SO_REUSEPORT``); it is bound without that option first, so that a port some other server
    holds with it is reported busy, not shared."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StackError(f"port {port} on {host} is busy ({exc.strerror}): set {setting} to another port, "
                         "or 0 for any free one") from exc
    if not reuse_port:
        return sock
    port = sock.getsockname()[1]
    sock.close()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((host, port))
    except OSError as exc:
        holder.close()
        raise StackError(f"port {port} on {host} was taken meanwhile ({exc.strerror}): set {setting}") from exc
    return holder


class _Forked:
    """A part that the ``apps`` process forked (``devstack.component``), driven as a ``Popen`` is:
    its pid and its exit status come from that process's status lines; ``stdin`` is its ``go`` pipe."""

    def __init__(self, stdin: IO[bytes]) -> None:
        self.parent: subprocess.Popen[bytes] | None = None  # set once it is started
        self.stdin: IO[bytes] | None = stdin
        self.pid = 0
        self.returncode: int | None = None
        self._changed = threading.Condition()

    def forked(self, pid: int) -> None:
        with self._changed:
            self.pid = pid
            self._changed.notify_all()

    def exited(self, status: int) -> None:
        with self._changed:
            self.returncode = status
            self._changed.notify_all()

    def poll(self) -> int | None:
        parent = self.parent
        if self.returncode is None and parent is not None and parent.poll() is not None and not self._alive():
            self.exited(parent.returncode if parent.returncode is not None else -signal.SIGKILL)  # its own is lost
        return self.returncode

    def _alive(self) -> bool:
        """Without the parent that would report its end: whether the process still exists."""
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self.poll() is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(f"part {self.pid}", timeout or 0.0)
                self._changed.wait(0.1 if left is None else min(left, 0.1))
            assert self.returncode is not None
            return self.returncode

    def send_signal(self, sig: int) -> None:
        """To the part; before it is forked, to ``apps`` (which then never forks it)."""
        if self.poll() is not None:
            return
        if self.pid:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        elif self.parent is not None and self.parent.poll() is None:
            self.parent.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL to the part's process group (its own session); before it is forked, to ``apps``'s."""
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif self.parent is not None and self.parent.poll() is None:
            os.killpg(self.parent.pid, signal.SIGKILL)


@dataclass
class _Part:
    name: str
    env: dict[str, str]
    sock: socket.socket | None = None  # handed to the part
    holder: socket.socket | None = None  # held until the part binds the port itself
    waits_for_go: bool = False
    process: subprocess.Popen[bytes] | _Forked | None = None
    status: IO[str] | None = None
    states: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    stopping: bool = False

    def wait_for(self, state: str, deadline: float) -> dict[str, Any]:
        with self.changed:
            while True:
                found = next((s for s in self.states if s.get("state") == state), None)
                if found is not None:
                    return found
                if self.process is not None and self.process.poll() is not None:
                    raise PartFailedError(f"the {self.name} process exited (status {self.process.returncode}) "
                                          "while starting; its output above says why")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StackError(f"the {self.name} process did not start within {START_TIMEOUT:g} s")
                self.changed.wait(min(left, 0.2))


class Supervisor:
    """Starts the local stack's parts as processes and stops them (see the module's notes).

    Ports of 0 pick free ones. ``with_rest=False`` is ``order-engine services``. ``state_dir``
    None keeps no state; ``fresh`` empties it first. ``env`` is laid over what the parts read.
    """

    def __init__(self, *, rest_port: int = 8000, ws_port: int = 8001, aws_port: int = 8002, sqs_port: int = 8003,
                 redis_port: int = 0, aws_endpoint_url: str | None = None, redis_url: str | None = None,
                 with_rest: bool = True, stage: str = "local", host: str = "127.0.0.1",
                 project_dir: Path | None = None, state_dir: Path | None = None, fresh: bool = False,
                 env: Mapping[str, str] | None = None, api_keys: str | None = None) -> None:
        from .project import project_dir as find_project_dir

        self.host = host
        self.stage = stage
        self.project_dir = find_project_dir(project_dir)
        self.state_dir = state_dir
        self.fresh = fresh
        self.with_rest = with_rest
        self._ports = {"REST_PORT": rest_port, "WS_PORT": ws_port, "AWS_PORT": aws_port, "SQS_PORT": sqs_port,
                       "REDIS_PORT": redis_port}
        self._aws_endpoint_url = aws_endpoint_url.rstrip("/") if aws_endpoint_url else None
        self._redis_url = redis_url
        self._env = dict(env or {})
        self._api_keys = api_keys
        self._parts: dict[str, _Part] = {}
        self._stopping = threading.Event()
        self.urls: dict[str, str] = {}
        self.restored: list[str] = []
        self.started_at = 0.0
        self.ready_after = 0.0

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> Supervisor:
        self.started_at = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.ready_after = time.monotonic() - self.started_at
        return self

    def _start(self) -> None:
        from .project import first_api_key
        from .redis_server import DEFAULT_REDIS_URL, redis_answers

        if self.state_dir is not None and self.fresh and self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        deadline = time.monotonic() + START_TIMEOUT
        socks: dict[str, socket.socket] = {}
        if self.with_rest:
            socks["rest"] = bind_port(self.host, self._ports["REST_PORT"], "REST_PORT (--rest-port)")
        socks["gateway"] = bind_port(self.host, self._ports["WS_PORT"], "WS_PORT (--ws-port)")
        embedded_aws = self._aws_endpoint_url is None
        if embedded_aws:
            socks["dynamodb"] = bind_port(self.host, self._ports["AWS_PORT"], "AWS_PORT (--aws-port)", reuse_port=True)
            socks["sqs"] = bind_port(self.host, self._ports["SQS_PORT"], "SQS_PORT (--sqs-port)", reuse_port=True)
        redis_url = self._redis_url if self._redis_url and redis_answers(self._redis_url) else None
        if redis_url is None and self._redis_url:
            print(f"REDIS_URL {self._redis_url} does not answer; starting an embedded Redis", flush=True)
        if redis_url is None and not self._redis_url and redis_answers(DEFAULT_REDIS_URL):
            redis_url = DEFAULT_REDIS_URL
        if redis_url is None:
            socks["redis"] = bind_port(self.host, self._ports["REDIS_PORT"], "REDIS_PORT (--redis-port)")
            redis_url = f"redis://{self.host}:{socks['redis'].getsockname()[1]}/0"
        port = {name: sock.getsockname()[1] for name, sock in socks.items()}
        endpoints: dict[str, str] = {}
        if embedded_aws:
            endpoints = {"dynamodb": f"http://{self.host}:{port['dynamodb']}",
                         "sqs": f"http://{self.host}:{port['sqs']}"}
        env = self._environment(endpoints, redis_url, port["gateway"])
        self.urls = {
            "ws": f"ws://{self.host}:{port['gateway']}",
            "management": env["WS_MANAGEMENT_ENDPOINT"],
            "aws": endpoints.get("dynamodb", self._aws_endpoint_url or ""),
            "sqs": endpoints.get("sqs", self._aws_endpoint_url or ""),
            "redis": redis_url,
            "api_key": first_api_key(env["API_KEYS"]),
        }
        if self.with_rest:
            self.urls["rest"] = f"http://{self.host}:{port['rest']}"
        provisioning = _Background(_import_provisioning)
        # Every part at once: the emulators, Redis, and the app's parts (which import the app meanwhile).
        for service in ("dynamodb", "sqs") if embedded_aws else ():
            self._spawn(_Part(service, {**env, "DEVSTACK_PORT": str(port[service])}, holder=socks[service]))
        if "redis" in socks:
            self._spawn(_Part("redis", env, sock=socks["redis"]))
        app_parts = [_Part(name, env, sock=socks.get(name), waits_for_go=True)
                     for name in ("gateway", "functions", "rest") if name != "rest" or self.with_rest]
        if FORK_APP_PARTS:
            self._spawn_app_parts(app_parts, env)
        else:
            for part in app_parts:
                self._spawn(part)
        for service in ("dynamodb", "sqs") if embedded_aws else ():
            self._wait_for_emulator(service, endpoints[service], deadline)
        if "redis" in self._parts:
            self._parts["redis"].wait_for("ready", deadline)
        provisioning.result()
        from infra.provision import provision

        provision(self._aws_endpoint_url, env["AWS_REGION"], endpoints=endpoints, check_services=not embedded_aws,
                  describe=False)
        if embedded_aws and self.state_dir is not None:
            self._restore(endpoints, env)
        for name in ("gateway", "functions"):
            self._go(name)
        for name in ("gateway", "functions"):
            self._parts[name].wait_for("ready", deadline)
        if self.with_rest:
            self._go("rest")
            self._parts["rest"].wait_for("ready", deadline)

    def _environment(self, endpoints: Mapping[str, str], redis_url: str, ws_port: int) -> dict[str, str]:
        """What the parts read: the stage's variables from .chalice/config.json unless the shell
        sets them, the stack's endpoints, then ``env`` given to the constructor, which wins."""
        from chalicelib.config import DEFAULT_API_KEYS

        from .project import chalice_config

        current = os.environ
        from_config = chalice_config(None, self.stage, self.project_dir).environment_variables
        env = dict(current)
        # The stage's endpoints (for `chalice local`) are replaced by this stack's own below.
        env.update({name: str(value) for name, value in from_config.items()
                    if name not in current and not name.startswith("AWS_ENDPOINT_URL")})
        env.update({
            "STAGE": self.stage,
            "REDIS_URL": redis_url,
            "WS_MANAGEMENT_ENDPOINT": f"http://{self.host}:{ws_port}/{self.stage}",
            "WS_PUBLIC_URL": current.get("WS_PUBLIC_URL") or f"ws://{self.host}:{ws_port}",
            "API_KEYS": self._api_keys or current.get("API_KEYS") or from_config.get("API_KEYS") or DEFAULT_API_KEYS,
            "DEVSTACK_PROJECT_DIR": str(self.project_dir),
            "DEVSTACK_HOST": self.host,
            "PYTHONUNBUFFERED": "1",
        })
        if self.state_dir is not None:
            env["DEVSTACK_STATE_DIR"] = str(self.state_dir)
        if endpoints:  # the embedded emulator: DynamoDB's process answers every other service too
            env.update({
                "AWS_ENDPOINT_URL": endpoints["dynamodb"],
                "AWS_ENDPOINT_URL_DYNAMODB": endpoints["dynamodb"],
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoints["dynamodb"],
                "AWS_ENDPOINT_URL_SQS": endpoints["sqs"],
                "AWS_PARAMETER_VALIDATION": current.get("AWS_PARAMETER_VALIDATION", "false"),
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            })
        else:
            env["AWS_ENDPOINT_URL"] = self._aws_endpoint_url or ""
            env.setdefault("AWS_ACCESS_KEY_ID", "test")
            env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
            region = current.get("AWS_REGION") or current.get("AWS_DEFAULT_REGION") or "us-east-1"
            env.setdefault("AWS_REGION", region)
            env.setdefault("AWS_DEFAULT_REGION", region)
        env.update(self._env)
        return env

    def _spawn(self, part: _Part, extra_fds: list[int] | None = None) -> None:
        read, write = os.pipe()
        keep = [write, *(extra_fds or [])]
        # botocore adds app/<name> to its User-Agent: the DynamoDB emulator serves intake first
        env = {**part.env, "DEVSTACK_STATUS_FD": str(write), "AWS_SDK_UA_APP_ID": part.name}
        if part.sock is not None:
            env["DEVSTACK_SOCKET_FD"] = str(part.sock.fileno())
            keep.append(part.sock.fileno())
        part.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.component", part.name], cwd=self.project_dir, env=env, pass_fds=keep,
            stdin=subprocess.PIPE if part.waits_for_go else subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the supervisor only: it stops the parts in order
        )
        os.close(write)
        if part.sock is not None:
            part.sock.close()  # the part has it now
            part.sock = None
        part.status = os.fdopen(read, "r")
        self._parts[part.name] = part
        threading.Thread(target=self._read_status, args=(part,), name=f"devstack-status-{part.name}",
                         daemon=True).start()

    def _spawn_app_parts(self, parts: list[_Part], env: dict[str, str]) -> None:
        """The app's parts, forked by one ``apps`` process from its import of the app (see
        ``devstack.component``): each part gets a status pipe, a ``go`` pipe and its socket."""
        plan: dict[str, dict[str, int]] = {}
        keep: list[int] = []  # the pipes' ends that are the parts' (the sockets are closed below)
        sockets: list[int] = []
        for part in parts:
            status_read, status_write = os.pipe()
            go_read, go_write = os.pipe()
            plan[part.name] = {"status": status_write, "go": go_read}
            keep += [status_write, go_read]
            if part.sock is not None:
                plan[part.name]["socket"] = part.sock.fileno()
                sockets.append(part.sock.fileno())
            part.status = os.fdopen(status_read, "r")
            part.process = _Forked(os.fdopen(go_write, "wb"))
            self._parts[part.name] = part  # before ``apps`` can say it forked them
        parent = _Part("apps", {**env, "DEVSTACK_APP_PARTS": json.dumps(plan)})
        self._spawn(parent, extra_fds=keep + sockets)
        assert isinstance(parent.process, subprocess.Popen)
        for fd in keep:
            os.close(fd)  # the parts have them now
        for part in parts:
            assert isinstance(part.process, _Forked)
            part.process.parent = parent.process
            if part.sock is not None:
                part.sock.close()
                part.sock = None
            threading.Thread(target=self._read_status, args=(part,), name=f"devstack-status-{part.name}",
                             daemon=True).start()

    def _read_status(self, part: _Part) -> None:
        assert part.status is not None
        for line in part.status:
            try:
                state = json.loads(line)
            except ValueError:
                continue
            if state.get("state") in ("forked", "exited"):  # from ``apps``, about one of its parts
                child = self._parts.get(str(state.get("part")))
                if child is not None and isinstance(child.process, _Forked):
                    if state["state"] == "forked":
                        child.process.forked(int(state["pid"]))
                    else:
                        child.process.exited(int(state["status"]))
                continue
            if state.get("state") == "restored":
                self.restored.append(f"{part.name}: {state.get('what')}")
            with part.changed:
                part.states.append(state)
                part.changed.notify_all()
        with part.changed:
            part.changed.notify_all()

    def _wait_for_emulator(self, service: str, endpoint: str, deadline: float) -> None:
        part = self._parts[service]
        while True:
            try:
                with urllib.request.urlopen(f"{endpoint}/_devstack/ping", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if part.process is not None and part.process.poll() is not None:
                raise PartFailedError(f"the {service} emulator exited (status {part.process.returncode}) while "
                                      "starting; its output above says why")
            if time.monotonic() > deadline:
                raise StackError(f"the {service} emulator did not answer within {START_TIMEOUT:g} s")
            time.sleep(0.02)
        if part.holder is not None:
            part.holder.close()  # the emulator listens on the port now
            part.holder = None

    def _go(self, name: str) -> None:
        part = self._parts[name]
        part.wait_for("prepared", time.monotonic() + START_TIMEOUT)
        assert part.process is not None and part.process.stdin is not None
        part.process.stdin.write(b"go\n")
        part.process.stdin.flush()

    # -- state ----------------------------------------------------------------------------------
    def _restore(self, endpoints: Mapping[str, str], env: Mapping[str, str]) -> None:
        """The saved tables and queues back (each emulator restores its own, side by side); then
        every order that was being executed is sent to the queue again."""
        answers: dict[str, Any] = {}

        def ask(service: str) -> None:
            request = urllib.request.Request(f"{endpoints[service]}/_devstack/restore", method="POST", data=b"")
            with urllib.request.urlopen(request, timeout=120) as resp:
                answers[service] = json.loads(resp.read()).get("restored")

        threads = [threading.Thread(target=ask, args=(s,)) for s in ("dynamodb", "sqs")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for service in ("dynamodb", "sqs"):
            if answers.get(service):
                self.restored.append(f"{service}: {answers[service]}")
        if answers.get("dynamodb"):
            resumed = resume_orders(endpoints, env)
            if resumed:
                self.restored.append(f"orders sent to the queue again: {resumed}")

    def save(self) -> bool:
        """Each emulator saves its state now (the stack stops next, or a test wants it on disk);
        False if one could not."""
        saved = True
        for service in ("dynamodb", "sqs"):
            part = self._parts.get(service)
            if part is None or part.process is None or part.process.poll() is not None:
                continue
            try:
                request = urllib.request.Request(f"{self.urls['aws' if service == 'dynamodb' else 'sqs']}"
                                                 "/_devstack/save", method="POST", data=b"")
                with urllib.request.urlopen(request, timeout=60):
                    pass
            except OSError as exc:
                print(f"state: the {service} emulator could not save ({exc})", flush=True)
                saved = False
        return saved

    # -- running and stopping ---------------------------------------------------------------------
    def pids(self) -> dict[str, int]:
        """Each part's process id (an emulator's server runs its worker as a child of it)."""
        return {name: part.process.pid for name, part in self._parts.items() if part.process is not None}

    def wait(self) -> None:
        """Until a signal asks to stop (returns) or a part dies (PartFailedError)."""
        while not self._stopping.wait(0.2):
            for part in self._parts.values():
                if part.process is not None and part.process.poll() is not None and not part.stopping:
                    raise PartFailedError(f"the {part.name} process exited on its own (status "
                                          f"{part.process.returncode}); stopping the stack")

    def request_stop(self) -> None:
        self._stopping.set()

    def stop(self) -> None:
        """In order: REST, then the gateway and the pollers, then the state is saved, then Redis
        and the emulators. Each part gets SIGTERM, and SIGKILL if it has not ended in time."""
        self._stopping.set()
        if not self._parts:
            return
        self._terminate(["rest"])
        self._terminate(["gateway", "functions"])
        self._terminate(["apps"])  # their parent: it ends once they have
        if self.state_dir is not None and self.save():
            print(f"state saved in {self.state_dir}", flush=True)
        self._terminate(["redis", "dynamodb", "sqs"])
        for part in self._parts.values():
            for closable in (part.sock, part.holder, part.status):
                if closable is not None:
                    closable.close()
            if part.process is not None and part.process.stdin is not None:
                part.process.stdin.close()
        self._parts = {}

    def _terminate(self, names: list[str]) -> None:
        parts = [self._parts[n] for n in names if n in self._parts]
        for part in parts:
            part.stopping = True
            if part.process is not None and part.process.poll() is None:
                if part.process.stdin is not None:
                    try:  # a part still waiting for "go" reads end-of-file and leaves
                        part.process.stdin.close()
                    except OSError:
                        pass
                part.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for part in parts:
            if part.process is None:
                continue
            try:
                part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"the {part.name} process did not stop within {STOP_TIMEOUT:g} s; killing it", flush=True)
                if isinstance(part.process, _Forked):
                    part.process.kill_group()
                else:
                    os.killpg(part.process.pid, signal.SIGKILL)
                part.process.wait()

    def run_forever(self, banner: bool = True, ready_file: Path | None = None) -> int:
        """Start, print where everything is, serve until Ctrl-C or SIGTERM, stop; the exit status."""
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            try:
                self.start()
            except StackError as exc:
                print(f"order-engine: the local stack could not start: {exc}", file=sys.stderr, flush=True)
                return 1
            if self._stopping.is_set():
                return 0
            if banner:
                print(self.banner(), flush=True)
            if ready_file is not None:
                _write_json(ready_file, {"urls": self.urls, "pids": self.pids(), "readyAfter": self.ready_after,
                                         "restored": self.restored})
            try:
                self.wait()
            except PartFailedError as exc:
                print(f"order-engine: {exc}", file=sys.stderr, flush=True)
                status = 1
            print("stopping…", flush=True)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return status

    def banner(self) -> str:
        from .cli import DEFAULT_REST, DEFAULT_WS

        u = self.urls
        body = '{"tokenIn":"SOL","tokenOut":"USDC","amount":"1.5"}'
        embedded = " (embedded moto)" if self._aws_endpoint_url is None else ""
        lines = [f"order engine: local {'stack' if self.with_rest else 'services'}, stage {self.stage} "
                 f"(ready in {self.ready_after:.1f} s)"]
        if "rest" in u:
            lines.append(f"  REST       {u['rest']}")
        lines += [
            f"  WebSocket  {u['ws']}/?apiKey={u['api_key']}",
            f"  AWS        {u['aws']}{embedded}: DynamoDB, DynamoDB Streams and the rest",
            f"  SQS        {u['sqs']}{embedded}",
            f"  Redis      {u['redis']}",
            f"  API key    {u['api_key']}",
        ]
        if self.state_dir is not None:
            restored = "; ".join(self.restored) if self.restored else "nothing saved yet"
            lines.append(f"  State      {self.state_dir} (restored: {restored}; --fresh starts empty)")
        if "rest" in u:
            where = "" if (u["rest"], u["ws"]) == (DEFAULT_REST, DEFAULT_WS) else f" --rest {u['rest']} --ws {u['ws']}"
            lines += ["Try:",
                      f"  curl -s -X POST {u['rest']}/api/orders/execute -H 'x-api-key: {u['api_key']}' "
                      f"-H 'content-type: application/json' -d '{body}'",
                      f"  .venv/bin/order-engine submit --from SOL --to USDC --amount 1.5 --watch{where}"]
        else:
            lines += ["Serve the REST API with auto-reload in another terminal:",
                      "  .venv/bin/chalice local --stage local --port 8000"]
            lines += self._stage_differences()
        lines.append("Ctrl-C stops.")
        return "\n".join(lines)

    def _stage_differences(self) -> list[str]:
        """``chalice local --stage local`` takes its endpoints from the stage's config, not the shell:
        a warning for each one this stack does not serve where the stage says."""
        from .project import chalice_config

        stage = chalice_config(None, self.stage, self.project_dir).environment_variables
        u = self.urls
        ours = {"WS_PUBLIC_URL": u["ws"], "AWS_ENDPOINT_URL": u["aws"], "AWS_ENDPOINT_URL_SQS": u["sqs"],
                "REDIS_URL": u["redis"], "REDIS_PREFIX": os.environ.get("REDIS_PREFIX") or "oe"}
        differ = [f"{name} is {value} here, {stage.get(name)} in the stage" for name, value in ours.items()
                  if stage.get(name) not in (None, value)]
        if not differ:
            return []
        return [f"Warning: the '{self.stage}' stage of .chalice/config.json does not point at this stack, and "
                "chalice local reads the stage, not the shell:",
                *(f"  {line}" for line in differ),
                "  Use the default ports and prefix, or a stage of your own with these values."]


class _Background:
    """Runs ``target`` on a thread now; ``result()`` waits for it and raises what it raised."""

    def __init__(self, target: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self._thread.start()

    def _run(self, target: Any) -> None:
        try:
            target()
        except BaseException as exc:
            self._error = exc

    def result(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _import_provisioning() -> None:
    import infra.provision

    infra.provision.template_resources()


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def resume_orders(endpoints: Mapping[str, str], env: Mapping[str, str]) -> int:
    """Send every order that was being executed (any status but waiting and the terminal ones)
    to the orders queue again. Sound because execution is at most once: a duplicate of a message
    that survived finds its order moved on, or claims it once (conditional writes). A message
    that was lost between the two emulators' snapshots (the order saved, its message not yet, or
    the other way round) is replaced. The copies wait ``RESUME_DELAY_SECONDS``, so a surviving
    message (with its receive count, i.e. its attempt) is normally taken first."""
    import boto3

    from chalicelib.domain.orders import TERMINAL, OrderStatus

    statuses = sorted(s.value for s in OrderStatus if s not in TERMINAL and s is not OrderStatus.WAITING)
    region = env.get("AWS_REGION", "us-east-1")
    dynamodb = boto3.client("dynamodb", endpoint_url=endpoints["dynamodb"], region_name=region,
                            aws_access_key_id="test", aws_secret_access_key="test")
    sqs = boto3.client("sqs", endpoint_url=endpoints["sqs"], region_name=region,
                       aws_access_key_id="test", aws_secret_access_key="test")
    table, queue = env.get("ORDERS_TABLE", "order-engine-orders"), env.get("ORDERS_QUEUE", "order-engine-orders")
    names = {"#status": "status"}
    values = {f":s{i}": {"S": s} for i, s in enumerate(statuses)}
    ids: list[str] = []
    request: dict[str, Any] = {
        "TableName": table, "ProjectionExpression": "orderId", "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values, "FilterExpression": f"#status IN ({', '.join(values)})",
    }
    try:
        while True:
            page = dynamodb.scan(**request)
            ids.extend(item["orderId"]["S"] for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        for start in range(0, len(ids), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps({"orderId": order_id}, separators=(",", ":")),
                        "DelaySeconds": RESUME_DELAY_SECONDS}
                       for i, order_id in enumerate(ids[start:start + 10])]
            sqs.send_message_batch(QueueUrl=url, Entries=entries)
    finally:
        dynamodb.close()
        sqs.close()
    return len(ids)
