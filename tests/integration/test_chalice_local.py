"""Develop with ``chalice local``: ``order-engine services`` runs everything but the REST API, and
``chalice local --stage local`` serves the routes against it, reloading them when their code changes.

The test works on a copy of the project (the repository is never edited), whose ``local`` stage
points at the ports the services were given."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from .conftest import TERMINAL, receive_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHALICE = Path(sys.executable).with_name("chalice")
FAST = {"SWAP_LATENCY_MS": "0", "QUOTE_LATENCY_MS": "0", "CONFIRM_POLL_MS": "10", "LOG_LEVEL": "WARNING"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(path: Path, process: subprocess.Popen[bytes], log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Any]]:
    ready, log = tmp_path / "services.json", tmp_path / "services.log"
    argv = [sys.executable, "-m", "devstack.cli", "services", "--ws-port", "0", "--aws-port", "0",
            "--sqs-port", "0", "--redis-port", "0", "--no-state", "--ready-file", str(ready)]
    with open(log, "ab") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **FAST}, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_for(ready, process, log)
        yield json.loads(ready.read_text())["urls"]
    finally:
        _stop(process)


@pytest.fixture
def project(tmp_path: Path, services: dict[str, Any]) -> Path:
    """A copy of the app whose ``local`` stage names the services' ports."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy2(ROOT / "app.py", copy / "app.py")
    shutil.copytree(ROOT / "chalicelib", copy / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", copy / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
    config_path = copy / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    env = config["stages"]["local"]["environment_variables"]
    env.update({
        "AWS_ENDPOINT_URL": services["aws"], "AWS_ENDPOINT_URL_SQS": services["sqs"],
        "WS_PUBLIC_URL": services["ws"], "WS_MANAGEMENT_ENDPOINT": services["management"],
        "REDIS_URL": services["redis"], "REDIS_PREFIX": os.environ["REDIS_PREFIX"],
        "API_KEYS": f"{services['api_key']}:local", **FAST,
    })
    config_path.write_text(json.dumps(config, indent=2))
    return copy


def test_chalice_local_serves_an_order_to_confirmed_and_reloads_a_changed_route(
        tmp_path: Path, services: dict[str, Any], project: Path) -> None:
    if not CHALICE.exists():
        pytest.skip("the chalice command is not installed next to this Python")
    port, log = _free_port(), tmp_path / "chalice.log"
    with open(log, "ab") as out:
        chalice = subprocess.Popen([str(CHALICE), "local", "--stage", "local", "--port", str(port)], cwd=project,
                                   env={**os.environ, "PYTHONPATH": str(project)}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    rest, key = f"http://127.0.0.1:{port}", services["api_key"]
    try:
        with httpx.Client(base_url=rest, headers={"x-api-key": key}, timeout=30) as http:
            deadline = time.monotonic() + 90
            while True:
                assert chalice.poll() is None, log.read_text(errors="replace")
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.2)
            # GIVEN chalice local serving the routes against the services: an order runs to the end
            accepted = http.post("/api/orders/execute", json={"tokenIn": "SOL", "tokenOut": "USDC", "amount": "1"})
            assert accepted.status_code == 202, accepted.text
            order_id = accepted.json()["orderId"]
            assert accepted.json()["wsUrl"].startswith(services["ws"])
            with connect(f"{services['ws']}/?apiKey={key}&orderId={order_id}", open_timeout=10) as ws:
                messages = receive_until(ws, lambda m: m.get("status") in TERMINAL, timeout=60)
            assert messages[-1]["status"] == "confirmed", messages
            # WHEN a route's code changes
            http_module = project / "chalicelib" / "api" / "http.py"
            source = http_module.read_text()
            changed = source.replace('{"status": "ok" if ok else "degraded", "checks": checks}',
                                     '{"status": "ok" if ok else "degraded", "checks": checks, "reloaded": True}')
            assert changed != source
            http_module.write_text(changed)
            # THEN chalice local serves the change without a restart
            deadline = time.monotonic() + 60
            while True:
                try:
                    if http.get("/health").json().get("reloaded") is True:
                        break
                except (httpx.TransportError, ValueError):
                    pass  # the server restarts to reload
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                time.sleep(0.3)
    finally:
        _stop(chalice)
