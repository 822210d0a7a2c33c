"""schemathesis against the whole local stack: ``make fuzz`` (``python -m devstack.fuzz``).

Starts the local stack in this process on free ports, with two clients' API keys, or uses the
stack at ``FUZZ_URL`` (keys in ``FUZZ_API_KEYS``, ``key`` or ``keyA,keyB``; default
``local-dev-key``). Then runs schemathesis's CLI in a process of its own against the document the
stack serves at ``/openapi.json``: every operation, every check, every phase (examples, coverage,
fuzzing, stateful along the document's links), with ``schemathesis.toml`` for the rest. Its output
is printed as it comes, then how often each check passed and failed; the exit code is
schemathesis's (non-zero on any failure).

    make fuzz                                       # the default budget below
    make fuzz FUZZ_ARGS='--max-examples 400 --seed 7'
    FUZZ_URL=http://127.0.0.1:8000 make fuzz        # a stack already running (make run)

The last run's reports are in ``build/fuzz`` (``report.json``, ``events.ndjson``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "schemathesis.toml"
REPORTS = ROOT / "build" / "fuzz"  # the last run's reports, to look into a failure
PHASES = "examples,coverage,fuzzing,stateful"
# Two clients, so that one client's orders can be asked for with the other's key (a 404).
STACK_KEYS = ("fuzz-key-a", "fuzz-key-b")
# Venues and chain as fast as the integration tier's, and no rate limit in the way of the fuzzer
# (a 429 is in the document and would pass, but would test nothing).
STACK_ENV = {
    "API_KEYS": f"{STACK_KEYS[0]}:fuzz-client-a,{STACK_KEYS[1]}:fuzz-client-b",
    "QUOTE_LATENCY_MS": "0,5",
    "SWAP_LATENCY_MS": "50,150",
    "CONFIRM_POLL_MS": "20",
    "RATE_LIMIT_PER_MIN": "1000000",
    "LOG_LEVEL": "ERROR",
}
DEFAULT_MAX_EXAMPLES = 100  # per operation and phase; about two minutes on two cores

__all__ = ["STACK_ENV", "STACK_KEYS", "FuzzResult", "check_counts", "local_stack", "main", "run_schemathesis"]


def _auth_file(keys: Sequence[str], directory: Path) -> Path:
    """Web Fuzzing Commons auth: one user per key, each sending its key as ``x-api-key``."""
    users = [{"name": f"client-{i + 1}", "fixedHeaders": [{"name": "x-api-key", "value": key}]}
             for i, key in enumerate(keys)]
    path = directory / "auth.json"
    path.write_text(json.dumps({"schemaVersion": "0.2.0", "auth": users}), encoding="utf-8")
    return path


def _config_file(keys: Sequence[str], directory: Path) -> Path:
    """``schemathesis.toml`` plus this run's keys; with two, the clients are peers whose orders
    must stay invisible to each other (object_level_authorization)."""
    auth = _auth_file(keys, directory)
    text = CONFIG.read_text(encoding="utf-8")
    text += f"\n[auth.wfc]\npath = {json.dumps(str(auth))}\n"
    if len(keys) > 1:
        text += "peers = " + json.dumps([f"client-{i + 1}" for i in range(len(keys))]) + "\n"
    path = directory / "schemathesis.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _served_document(url: str, directory: Path) -> Path:
    """The stack's own ``/openapi.json``, as a file: schemathesis leaves out the operation that
    served the document it loaded, and this one is tested like every other."""
    import httpx

    response = httpx.get(f"{url}/openapi.json", timeout=30)
    response.raise_for_status()
    path = directory / "openapi.json"
    path.write_bytes(response.content)
    return path


def schemathesis_command(url: str, config: Path, document: Path, reports: Path,
                         extra: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            # every check runs (schemathesis's default; see schemathesis.toml for the one exception)
            str(document), "--url", url, "--phases", PHASES,
            "--report", "json,ndjson", "--report-json-path", str(reports / "report.json"),
            "--report-ndjson-path", str(reports / "events.ndjson"), *extra]


@dataclass(frozen=True)
class FuzzResult:
    returncode: int
    report: dict[str, Any]  # schemathesis's JSON report: operations, phases, test cases, failures
    checks: dict[str, dict[str, int]]  # check -> {"success": n, "failure": n, …}, over every test case
    output: str | None  # what schemathesis printed, when captured

    def checks_table(self) -> str:
        width = max((len(name) for name in self.checks), default=0)
        lines = ["Checks (test cases):"]
        for name, counts in sorted(self.checks.items()):
            passed, failed = counts.get("success", 0), counts.get("failure", 0)
            lines.append(f"  {name:<{width}}  {passed:>6} passed  {failed:>4} failed")
        return "\n".join(lines)


def check_counts(events: Path) -> dict[str, dict[str, int]]:
    """How often each check passed and failed, from schemathesis's NDJSON events."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    if not events.is_file():
        return {}
    with events.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.startswith('{"ScenarioFinished"'):
                continue
            recorder = json.loads(line)["ScenarioFinished"]["recorder"]
            for results in recorder.get("checks", {}).values():
                for result in results:
                    counts[result["name"]][result["status"]] += 1
    return {name: dict(c) for name, c in counts.items()}


def run_schemathesis(url: str, keys: Sequence[str], extra: Sequence[str] = (), *, reports: Path | None = None,
                     capture: bool = False, timeout: float | None = None) -> FuzzResult:
    """schemathesis's CLI against ``url`` with ``keys``; its output printed as it comes (or captured).
    Its reports (JSON, NDJSON events) go to ``reports``, or to a directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = Path(tmp)
        out = reports or work
        out.mkdir(parents=True, exist_ok=True)
        url = url.rstrip("/")
        command = schemathesis_command(url, _config_file(keys, work), _served_document(url, work), out, extra)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run(command, cwd=ROOT, env=env, text=True, check=False, timeout=timeout,
                              capture_output=capture)
        report_file = out / "report.json"
        report = json.loads(report_file.read_text(encoding="utf-8")) if report_file.is_file() else {}
        return FuzzResult(done.returncode, report, check_counts(out / "events.ndjson"),
                          done.stdout + done.stderr if capture else None)


@contextlib.contextmanager
def local_stack(env: Mapping[str, str] | None = None) -> Iterator[str]:
    """The whole local stack on free ports; yields its REST URL. Redis keys go under a prefix of
    this run's own (unless ``REDIS_PREFIX`` is set), deleted afterwards."""
    from .stack import DevStack

    own_prefix = "REDIS_PREFIX" not in os.environ
    stack_env = {**STACK_ENV, **(env or {})}
    if own_prefix:
        stack_env["REDIS_PREFIX"] = f"fuzz-{uuid.uuid4().hex[:8]}"
    stack = DevStack(rest_port=0, ws_port=0, env=stack_env)
    stack.start()
    redis_url = stack.urls["redis"]
    try:
        yield stack.urls["rest"]
    finally:
        stack.stop()
        if own_prefix:
            _delete_prefix(redis_url, stack_env["REDIS_PREFIX"])


def _delete_prefix(redis_url: str, prefix: str) -> None:
    import redis

    try:
        client: Any = redis.Redis.from_url(redis_url, socket_connect_timeout=0.5, socket_timeout=5)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
        client.close()
    except redis.RedisError:  # an embedded Redis stopped with the stack: nothing is left behind
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.fuzz",
        description="schemathesis against the local stack: every check, every phase. Arguments after the "
                    "options go to `schemathesis run` (e.g. --seed 7 --max-time 120).")
    parser.add_argument("--url", default=os.environ.get("FUZZ_URL") or None,
                        help="a stack already running (default: start one here; env FUZZ_URL)")
    parser.add_argument("--keys", default=os.environ.get("FUZZ_API_KEYS") or None,
                        help="with --url: its API keys, `key` or `keyA,keyB` of two clients (env FUZZ_API_KEYS; "
                             "default local-dev-key)")
    args, extra = parser.parse_known_args(argv)
    if not any(a == "--max-examples" or a.startswith(("--max-examples=", "-n")) for a in extra):
        extra = ["--max-examples", str(DEFAULT_MAX_EXAMPLES), *extra]
    if args.url:
        keys = [k.strip() for k in (args.keys or "local-dev-key").split(",") if k.strip()]
        result = run_schemathesis(args.url, keys, extra, reports=REPORTS)
    else:
        with local_stack() as url:
            print(f"local stack at {url}", flush=True)
            result = run_schemathesis(url, STACK_KEYS, extra, reports=REPORTS)
    print(result.checks_table())
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
