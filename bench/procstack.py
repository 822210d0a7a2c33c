"""The local stack as ``make run`` starts it (``order-engine run``: one process per part), driven
from the bench: started in a subprocess, timed to a healthy ``/health``, its CPU read from
``/proc`` per process, its AWS calls and Redis commands counted by each part (``bench.counters``,
switched on by ``DEVSTACK_COUNT_CALLS``, written on SIGUSR1), stopped with SIGINT as Ctrl-C does.

``baseline`` runs another checkout's ``order-engine run`` instead (``python -m devstack.cli run`` in
that folder, with this interpreter): a before/after on the same machine. Its calls are not
counted. If its CLI writes a ready file it runs as this checkout's does (free ports, a fresh state
folder, each part's CPU apart); an older one runs on its default state and is measured as one
process with its children.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ProcessStack", "cpu_seconds", "external_redis_pid"]

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")
COUNTED_PARTS = ("gateway", "functions", "rest")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def external_redis_pid() -> int | None:
    """The machine's redis-server, if one runs (not ours: other users may share it)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
            except OSError:
                continue
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ProcessStack:
    def __init__(self, env: dict[str, str], baseline: Path | None = None, count: bool = True) -> None:
        self._env = env
        self.baseline = baseline
        self._count = count and baseline is None
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-stack-")
        self.folder = Path(self._tmp.name)
        self.process: subprocess.Popen[bytes] | None = None
        self.urls: dict[str, str] = {}
        self.pids: dict[str, int] = {}
        self.cold_start_seconds: float | None = None

    def start(self, timeout: float = 120) -> ProcessStack:
        env = {**os.environ, **self._env, "PYTHONUNBUFFERED": "1"}
        log = open(self.folder / "stack.log", "wb")  # noqa: SIM115 (closed with the folder)
        if self.baseline is None or self._speaks_ready_file(self.baseline):
            # A baseline whose CLI writes a ready file runs exactly as this checkout does: its
            # parts are known, so each one's CPU is measured, and it starts with no saved state.
            ready = self.folder / "ready.json"
            counts = self.folder / "counts"
            counts.mkdir()
            if self._count:
                env.update(DEVSTACK_COUNT_CALLS="1", DEVSTACK_COUNTS_DIR=str(counts))
            argv = [sys.executable, "-m", "devstack.cli", "run", "--rest-port", "0", "--ws-port", "0",
                    "--aws-port", "0", "--sqs-port", "0", "--state-dir", str(self.folder / "state"),
                    "--ready-file", str(ready)]
            cwd = self.baseline or ROOT
        else:
            rest, ws = _free_port(), _free_port()
            env.update(REST_PORT=str(rest), WS_PORT=str(ws))
            argv = [sys.executable, "-m", "devstack.cli", "run"]
            cwd = self.baseline
            self.urls = {"rest": f"http://127.0.0.1:{rest}", "ws": f"ws://127.0.0.1:{ws}"}
        started = time.monotonic()
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the stack exited: {(self.folder / 'stack.log').read_text()[-2000:]}")
            if argv[-2] == "--ready-file" and not self.urls:
                try:
                    info = json.loads((self.folder / "ready.json").read_text())
                except (OSError, ValueError):
                    time.sleep(0.01)
                    continue
                self.urls, self.pids = info["urls"], info["pids"]
            try:
                if httpx.get(f"{self.urls['rest']}/health", timeout=2).status_code == 200:
                    self.cold_start_seconds = time.monotonic() - started
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        else:
            raise RuntimeError("the stack did not become healthy")
        if not self.pids:
            self.pids = {"stack": self.process.pid}
        return self

    @staticmethod
    def _speaks_ready_file(checkout: Path) -> bool:
        try:
            return "--ready-file" in (checkout / "devstack" / "cli.py").read_text()
        except OSError:
            return False

    # -- CPU ------------------------------------------------------------------------------------
    def processes(self) -> dict[str, int]:
        """Every process of the stack by name: the supervisor, each part, each part's children."""
        assert self.process is not None
        named = {"supervisor": self.process.pid} if "stack" not in self.pids else {}
        for name, pid in self.pids.items():
            named[name] = pid
            if name == "apps":
                continue  # its children are the app's parts, each named already
            for i, child in enumerate(_children(pid)):
                named[f"{name} (worker{'' if i == 0 else f' {i + 1}'})"] = child
        return named

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, pid in self.processes().items():
            seconds = cpu_seconds(pid)
            if seconds is not None:
                out[name] = seconds
        return out

    # -- counts ---------------------------------------------------------------------------------
    def counts(self) -> dict[str, Any] | None:
        """Every counted part's calls so far, summed (each part writes its own on SIGUSR1)."""
        if not self._count:
            return None
        folder = self.folder / "counts"
        for old in folder.glob("*.json"):
            old.unlink()
        wanted = {name: pid for name, pid in self.pids.items() if name in COUNTED_PARTS}
        for pid in wanted.values():
            os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while len(list(folder.glob("*.json"))) < len(wanted) and time.monotonic() < deadline:
            time.sleep(0.02)
        total: dict[str, Any] = {"aws": Counter(), "redis": Counter()}
        for path in folder.glob("*.json"):
            part = json.loads(path.read_text())
            for service, op, n in part["aws"]:
                total["aws"][(service, op)] += n
            total["redis"].update(part["redis"])
            for key in ("redisConflicts", "received", "nonEmptyReceives", "streamRecords", "nonEmptyStreamReads"):
                total[key] = total.get(key, 0) + part[key]
        return total

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._tmp.cleanup()


def difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Counts between two snapshots of ``ProcessStack.counts``, in ``CallCounter.snapshot``'s shape."""
    out: dict[str, Any] = {"aws": dict(after["aws"] - before["aws"]), "redis": dict(after["redis"] - before["redis"])}
    for key in ("redisConflicts", "received", "nonEmptyReceives", "streamRecords", "nonEmptyStreamReads"):
        out[key] = after.get(key, 0) - before.get(key, 0)
    return out
