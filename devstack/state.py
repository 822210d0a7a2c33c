"""The local stack's state across restarts: the emulator's tables and queues, and the embedded
Redis's keys, saved under one folder (``.devstack/state/`` of the checkout by default).

Each part saves its own file, written whole to a temporary name and renamed over the last one, so
a file on disk is always a complete snapshot (a kill -9 during a write leaves the previous one):

- ``dynamodb.json``: every table's definition and items (DynamoDB JSON), saved by the DynamoDB
  emulator process;
- ``sqs.json``: every queue's attributes and messages, with their receive counts, saved by the
  SQS emulator process;
- ``redis.json``: every key of the embedded Redis (``DUMP`` and its time to live), saved by the
  embedded Redis's process. A Redis server of the machine keeps its own state.

A part saves when something changed since its last save, at most every ``SNAPSHOT_SECONDS``
(and never more than ``MAX_SHARE`` of its time: a big table is saved less often), and once more
when the stack stops. On start, each part reads its file back; a file that cannot be read whole
(corrupt, cut short, another format) is moved aside (``*.corrupt``) with one clear line, and that
part starts empty: the stack never fails to start because of its state.

Restoring is done inside the emulator's process, through moto's backends (the public API would
lose each message's receive count, i.e. each order's attempt). A message in flight when the stack
stopped belongs to a worker that is gone: it is visible again at once, with its receive count.

DynamoDB also keeps a journal (``dynamodb.journal``, see ``Journal``): every write it accepted
since the last snapshot, appended before the write is answered, and replayed on top of that
snapshot. A kill -9 therefore loses no acknowledged order write. That matters because the
simulated chain's state (Redis) is not rolled back: an order saved as ``building`` while its
transaction had in fact been sent would be sent again, and swap twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "ACCOUNT",
    "FORMAT",
    "SNAPSHOT_SECONDS",
    "Journal",
    "Snapshotter",
    "StateError",
    "default_state_dir",
    "dump_dynamodb",
    "dump_redis",
    "dump_sqs",
    "load_dynamodb",
    "load_redis",
    "load_sqs",
    "read_state",
    "write_state",
]

log = logging.getLogger("devstack.state")

FORMAT = "order-engine-local-state"
VERSION = 1
SNAPSHOT_SECONDS = 2.0  # a kill -9 loses at most about this much of the queues and Redis (DynamoDB: nothing)
MAX_SHARE = 0.05  # a save takes at most this share of its process's time: the interval grows with it
ACCOUNT = "123456789012"


class StateError(Exception):
    """A state file that cannot be used; the message says which and why."""


def default_state_dir(project_dir: Path) -> Path:
    return project_dir / ".devstack" / "state"


def services_state_dir(project_dir: Path) -> Path:
    """``order-engine services``' state: outside the checkout, because ``chalice local`` beside it
    restarts on any file that changes in the checkout, and the state changes every few seconds.
    One folder per checkout, under ``$XDG_STATE_HOME`` (``~/.local/state``)."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    digest = hashlib.sha256(str(project_dir.resolve()).encode()).hexdigest()[:10]
    return base / "order-engine" / f"{project_dir.resolve().name}-{digest}"


# -- files ---------------------------------------------------------------------------------------
def write_state(path: Path, part: str, body: dict[str, Any]) -> None:
    """Write ``body`` as ``path`` atomically: a reader sees the previous file or this one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "version": VERSION, "part": part, "savedAt": time.time(), **body}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_state(path: Path, part: str) -> dict[str, Any] | None:
    """The saved state of ``part``; None when there is none. Raises StateError when the file is
    there but cannot be used."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot be read ({exc.strerror})") from exc
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"{path}: not a complete snapshot ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT or document.get("part") != part:
        raise StateError(f"{path}: not a {part} snapshot of this stack")
    if document.get("version") != VERSION:
        raise StateError(f"{path}: snapshot version {document.get('version')!r}, this stack reads {VERSION}")
    return document


def set_aside(path: Path, reason: str) -> None:
    """Keep an unusable file for whoever wants to look, out of the next start's way."""
    aside = path.with_name(path.name + ".corrupt")
    try:
        os.replace(path, aside)
    except OSError:
        aside = path
    log.warning("%s; starting without it (kept as %s). Remove the folder %s to silence this.",
                reason, aside, path.parent)
    print(f"state: {reason}; this part starts empty (the file is kept as {aside})", flush=True)


def restore(path: Path, part: str, load: Callable[[dict[str, Any]], str]) -> str | None:
    """Read ``part`` from ``path`` and hand it to ``load``; a description of what was restored, or
    None. Nothing here raises: an unusable snapshot is set aside and the part starts empty."""
    try:
        document = read_state(path, part)
        if document is None:
            return None
        return load(document)
    except StateError as exc:
        set_aside(path, str(exc))
    except Exception as exc:  # a snapshot whose content does not fit (hand-edited, another version)
        set_aside(path, f"{path}: cannot be restored ({type(exc).__name__}: {exc})")
    return None


class Snapshotter:
    """Saves a part every ``interval`` seconds while it is ``dirty`` (``save`` returns what to write
    and may clear the flag), once more on ``stop()``; the interval stretches so that saving never
    takes more than ``MAX_SHARE`` of the time."""

    def __init__(self, path: Path, part: str, dump: Callable[[], dict[str, Any]], dirty: Callable[[], bool],
                 interval: float = SNAPSHOT_SECONDS, saved: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        self.part = part
        self._dump = dump
        self._dirty = dirty
        self._saved = saved
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.saves = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"devstack-state-{self.part}", daemon=True)
        self._thread.start()

    def save(self, force: bool = False) -> float:
        """Save now if anything changed (or ``force``); returns the seconds it took."""
        with self._lock:
            if not force and not self._dirty():
                return 0.0
            started = time.perf_counter()
            try:
                body = self._dump()
                write_state(self.path, self.part, body)
                self.saves += 1
                if self._saved is not None:
                    self._saved(body)
            except Exception:
                log.exception("saving the %s state to %s failed", self.part, self.path)
            return time.perf_counter() - started

    def _run(self) -> None:
        wait = self._interval
        while not self._stop.wait(wait):
            took = self.save()
            wait = max(self._interval, took / MAX_SHARE - took)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.save()


class Journal:
    """The writes a part accepted since its last snapshot, one JSON line each, numbered.

    ``append`` is called before the write is answered, and goes to the operating system at once
    (no fsync: a killed process loses nothing written, only a machine that stops would). Each
    snapshot records the number of the last write it holds (``journalSeq``); once it is on disk,
    ``trim`` drops what it holds. On start, ``after`` hands back the writes that follow the
    snapshot, provided they follow it without a gap (a journal that does not fit its snapshot
    is set aside). The caller serialises ``append``, ``mark`` (with the snapshot's dump) and
    ``trim``, which reads only what was appended since the mark."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seq = 0
        self._fd: int | None = None
        self._size = 0  # bytes in the file
        self._mark: tuple[int, int] | None = None  # (seq, size) when a snapshot was taken

    def start(self, seq: int) -> None:
        """Append from ``seq + 1`` on (after a replay), past any last line a kill cut short."""
        self.seq = seq
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._rewrite(_lines(e for e in self.entries() if e["seq"] <= seq))

    @property
    def started(self) -> bool:
        return self._fd is not None

    def append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            return
        self.seq += 1
        line = _lines([{"seq": self.seq, **entry}])
        os.write(self._fd, line)
        self._size += len(line)

    def mark(self) -> int:
        """A snapshot holds every write so far: its ``journalSeq``."""
        self._mark = (self.seq, self._size)
        return self.seq

    def entries(self) -> list[dict[str, Any]]:
        """Every whole entry on disk; a last line cut short by a kill is not one."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        entries = []
        lines = raw.split(b"\n")
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                if number == len(lines) - 1:  # the last write, cut short: never answered, so never acknowledged
                    break
                raise StateError(f"{self.path}: line {number + 1} is not a journal entry") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
                raise StateError(f"{self.path}: line {number + 1} is not a journal entry")
            entries.append(entry)
        return entries

    def after(self, seq: int) -> list[dict[str, Any]]:
        """The entries that follow a snapshot holding writes up to ``seq``; StateError when they do
        not follow it without a gap."""
        entries = [e for e in self.entries() if e["seq"] > seq]
        if entries and [e["seq"] for e in entries] != list(range(seq + 1, seq + 1 + len(entries))):
            raise StateError(f"{self.path}: its writes do not follow the snapshot's (write {seq}, then "
                             f"{entries[0]['seq']})")
        return entries

    def trim(self, seq: int) -> None:
        """Drop the entries up to ``seq`` (a snapshot on disk holds them), atomically."""
        if self._fd is None:
            return
        if self._mark is not None and self._mark[0] == seq:  # the writes since the mark: read only those
            with open(self.path, "rb") as f:
                f.seek(self._mark[1])
                self._rewrite(f.read())
        else:
            self._rewrite(_lines(e for e in self.entries() if e["seq"] > seq))
        self._mark = None

    def _rewrite(self, content: bytes) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, self.path)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = len(content)

    def set_aside(self, reason: str) -> None:
        """Keep an unusable journal for whoever wants to look, out of the next start's way."""
        aside = self.path.with_name(self.path.name + ".corrupt")
        try:
            os.replace(self.path, aside)
        except OSError:
            aside = self.path
        log.warning("%s; restoring without it (kept as %s)", reason, aside)
        print(f"state: {reason}; the writes after the last snapshot are not restored (the file is kept as "
              f"{aside})", flush=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _lines(entries: Iterable[dict[str, Any]]) -> bytes:
    """Journal entries as the file holds them: one compact JSON object per line."""
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)


# -- DynamoDB (inside the DynamoDB emulator's process) ---------------------------------------------
def _dynamodb_backend(region: str) -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT][region]


def dump_dynamodb(region: str) -> dict[str, Any]:
    """Every table: its definition (as DescribeTable gives it) and its items. The caller holds
    whatever serialises DynamoDB requests, so the snapshot is of one instant."""
    backend = _dynamodb_backend(region)
    tables = {}
    for name, table in list(backend.tables.items()):
        description = table.describe(base_key="Table")["Table"]
        definition = {key: description[key] for key in ("KeySchema", "AttributeDefinitions", "BillingModeSummary",
                                                         "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                                                         "StreamSpecification") if key in description}
        items = [item.to_json()["Attributes"] for item in table.all_items()]
        tables[name] = {"definition": definition, "items": items}
    return {"region": region, "tables": tables}


def load_dynamodb(document: dict[str, Any]) -> str:
    """Put every saved item back; a table the provisioning did not create is created first."""
    backend = _dynamodb_backend(str(document["region"]))
    counts = []
    for name, saved in dict(document["tables"]).items():
        if name not in backend.tables:
            _create_table(backend, name, saved["definition"])
        table = backend.get_table(name)
        for item in saved["items"]:
            table.put_item(item)
        counts.append(f"{name} {len(saved['items'])}")
    return "tables: " + (", ".join(counts) or "none")


def _create_table(backend: Any, name: str, definition: dict[str, Any]) -> None:
    def indexes(key: str) -> list[dict[str, Any]] | None:
        found = definition.get(key)
        if not found:
            return None
        return [{k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index} for index in found]

    backend.create_table(
        name, schema=definition["KeySchema"], throughput=None, attr=definition["AttributeDefinitions"],
        global_indexes=indexes("GlobalSecondaryIndexes"), indexes=indexes("LocalSecondaryIndexes"),
        streams=definition.get("StreamSpecification"), billing_mode="PAY_PER_REQUEST", sse_specification=None,
        tags=[], deletion_protection_enabled=False, warm_throughput=None,
    )


# -- SQS (inside the SQS emulator's process) -------------------------------------------------------
_QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                     "VisibilityTimeout", "RedrivePolicy", "FifoQueue", "ContentBasedDeduplication")


def _sqs_backend(region: str) -> Any:
    from moto.sqs.models import sqs_backends

    return sqs_backends[ACCOUNT][region]


def dump_sqs(region: str) -> dict[str, Any]:
    backend = _sqs_backend(region)
    queues = {}
    for name, queue in list(backend.queues.items()):
        attributes = {key: str(value) for key, value in queue.attributes.items()
                      if key in _QUEUE_ATTRIBUTES and value not in (None, "")}
        messages = []
        for m in list(queue._messages):
            messages.append({
                "id": m.id, "body": m.body, "messageAttributes": _jsonable(m.message_attributes),
                "sentTimestamp": m.sent_timestamp, "receiveCount": m.approximate_receive_count,
                "firstReceiveTimestamp": m.approximate_first_receive_timestamp,
                "delayedUntil": m.delayed_until, "groupId": m.group_id, "deduplicationId": m.deduplication_id,
                "sequenceNumber": m.sequence_number, "systemAttributes": _jsonable(m.system_attributes),
            })
        queues[name] = {"attributes": attributes, "messages": messages}
    return {"region": region, "queues": queues}


def load_sqs(document: dict[str, Any]) -> str:
    """Every saved message back in its queue: visible now (whoever had one in flight is gone),
    with its receive count; a queue the provisioning did not create is created first."""
    from moto.sqs.models import Message

    region = str(document["region"])
    backend = _sqs_backend(region)
    now = time.time()
    counts = []
    saved_queues = dict(document["queues"])
    for name in sorted(saved_queues, key=lambda n: "RedrivePolicy" in saved_queues[n]["attributes"]):
        saved = saved_queues[name]
        if name not in backend.queues:
            backend.create_queue(name, **saved["attributes"])
        queue = backend.queues[name]
        for raw in saved["messages"]:
            message = Message(raw["id"], raw["body"], system_attributes=_from_jsonable(raw.get("systemAttributes")))
            message.message_attributes = _from_jsonable(raw.get("messageAttributes")) or {}
            message.sent_timestamp = raw["sentTimestamp"]
            message.approximate_receive_count = int(raw["receiveCount"])
            message.approximate_first_receive_timestamp = raw.get("firstReceiveTimestamp")
            message.group_id = raw.get("groupId")
            message.deduplication_id = raw.get("deduplicationId")
            message.sequence_number = raw.get("sequenceNumber")
            message.delayed_until = min(float(raw.get("delayedUntil") or 0.0), now)
            message.visible_at = now
            queue._messages.append(message)
        counts.append(f"{name} {len(saved['messages'])}")
    return "queues: " + (", ".join(counts) or "none")


def _jsonable(value: Any) -> Any:
    """Message attributes as JSON: binary values in base64 under a marker."""
    if isinstance(value, bytes):
        return {"__b64__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_jsonable(v) for v in value]
    return value


# -- Redis (the embedded one, through the Redis protocol) -------------------------------------------
def dump_redis(client: Any) -> dict[str, Any]:
    """Every key of database 0: its ``DUMP`` and its time to live in ms (-1: none)."""
    keys = []
    for key in client.scan_iter(count=1000):
        with client.pipeline(transaction=False) as pipe:
            pipe.dump(key)
            pipe.pttl(key)
            dumped, ttl = pipe.execute()
        if dumped is None:  # expired or deleted meanwhile
            continue
        keys.append([base64.b64encode(key).decode(), base64.b64encode(dumped).decode(), int(ttl)])
    return {"keys": keys, "savedAtMs": int(time.time() * 1000)}


def load_redis(client: Any, document: dict[str, Any]) -> str:
    """Every saved key back, with what remains of its time to live; those expired meanwhile are not."""
    elapsed = int(time.time() * 1000) - int(document["savedAtMs"])
    restored = 0
    with client.pipeline(transaction=False) as pipe:
        for key, dumped, ttl in document["keys"]:
            remaining = 0 if ttl < 0 else ttl - elapsed
            if ttl >= 0 and remaining <= 0:
                continue
            pipe.restore(base64.b64decode(key), remaining, base64.b64decode(dumped), replace=True)
            restored += 1
        pipe.execute()
    return f"keys: {restored}"
