"""moto's server as one process per AWS service: the WSGI app that each emulator process serves.

``DEVSTACK_MOTO_SERVICE`` chooses it: ``dynamodb`` (DynamoDB and DynamoDB Streams, one request
at a time: see ``SerialDynamoDB``; anything else, e.g. SSM, through moto's dispatcher) or ``sqs``
(SQS, requests served concurrently, so a long poll never holds anything up; anything else through
moto's dispatcher). DynamoDB and SQS keep independent state, so each gets a core of its own.

Requests are routed straight to moto's per-service Flask app by their ``X-Amz-Target``: moto's
``DomainDispatcherApplication`` infers the service of every request by taking a global lock,
trying some 200 regular expressions and listing moto's package folder, about 0.7 ms a call.
Everything else (other services, ``/moto-api/``) still goes through the dispatcher. Two
operations that moto answers at a cost growing with the table's stream or the queue are served
from moto's own models here: ``GetRecords`` (its records written out directly) and
``SendMessage`` of a plain body to a standard queue (appended to moto's queue directly); each
has a test comparing it with what moto itself answers.

The local runtime's own endpoints, under ``/_devstack/``: ``GET ping``; ``POST save`` (the
state, now, if ``DEVSTACK_STATE_DIR`` is set); ``POST restore`` (once, after provisioning: the
saved tables or queues back; answers what was restored).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .emulator import SerialDynamoDB
from .state import ACCOUNT, Journal, Snapshotter, StateError, dump_dynamodb, dump_sqs, load_dynamodb, load_sqs, restore

__all__ = ["READ_ONLY", "MotoService", "app"]

log = logging.getLogger("devstack.moto")

WsgiApp = Callable[..., Iterable[bytes]]

# Operations that change nothing worth saving (the stream's iterators are not state to keep).
READ_ONLY = {
    "dynamodb": {"GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive",
                 "TransactGetItems", "DescribeEndpoints", "DescribeContinuousBackups", "ListTagsOfResource",
                 "DescribeStream", "GetShardIterator", "GetRecords", "ListStreams"},
    "sqs": {"GetQueueUrl", "GetQueueAttributes", "ListQueues", "ListQueueTags", "ListDeadLetterSourceQueues"},
}
_TARGETS = {"dynamodb": {"DynamoDB_": "dynamodb", "DynamoDBStreams_": "dynamodbstreams"},
            "sqs": {"AmazonSQS.": "sqs"}}


class MotoService:
    """The WSGI app of one emulator process (see the module's notes)."""

    def __init__(self, service: str, region: str = "us-east-1", state_dir: Path | None = None) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        if service not in _TARGETS:
            raise ValueError(f"unknown emulator service {service!r}: want one of {sorted(_TARGETS)}")
        self.service = service
        self.region = region
        self._fallback = DomainDispatcherApplication(create_backend_app)
        self._apps = {name: create_backend_app(name) for name in _TARGETS[service].values()}
        self._routes = list(_TARGETS[service].items())
        routed = SerialDynamoDB(self._routed) if service == "dynamodb" else self._routed
        self._serial = routed if isinstance(routed, SerialDynamoDB) else None
        self._app: WsgiApp = routed
        self._dirty = threading.Event()
        self._restored = False
        self.fast_records = True
        self.fast_sends = True
        self.sent_fast = 0  # how many SendMessage calls the fast path answered
        self._snapshots: Snapshotter | None = None
        self._journal: Journal | None = None
        if state_dir is not None:
            if self._serial is not None:
                self._journal = Journal(state_dir / f"{service}.journal")
            self._snapshots = Snapshotter(state_dir / f"{service}.json", service, self._dump, self._dirty.is_set,
                                          saved=self._saved)

    # -- WSGI -----------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith("/_devstack/"):
            return self._control(path[len("/_devstack/"):], environ, start_response)
        return self._app(environ, start_response)

    def _routed(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        if target == "DynamoDBStreams_20120810.GetRecords" and self.fast_records:
            served = self._get_records(environ, start_response)
            if served is not None:
                return served
        if target == "AmazonSQS.SendMessage" and self.fast_sends:
            served = self._send_message(environ, start_response)
            if served is not None:
                self._dirty.set()
                return served
        for prefix, name in self._routes:
            if target.startswith(prefix):
                operation = target.rpartition(".")[2]
                if operation in READ_ONLY[self.service]:
                    return self._apps[name](environ, start_response)
                if self._journal is not None and self._journal.started and name == "dynamodb":
                    return self._journaled(self._apps[name], target, environ, start_response)
                body = b"".join(self._apps[name](environ, start_response))
                if operation != "ReceiveMessage" or b'"Messages"' in body:  # an empty receive changes nothing
                    self._dirty.set()
                return [body]
        return self._fallback(environ, start_response)

    def _get_records(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """``GetRecords`` from moto's backend, its records written out as JSON directly.

        moto's generic response serializer walks every attribute of every image through the
        service model: about 4.8 ms of CPU per record of a few KB, 99 % of the call, in the one
        process that serves all of DynamoDB. The records are DynamoDB JSON already, so this writes
        the same response in a fraction of that (``test_moto_service`` compares the two). Anything
        unusual (an unknown iterator, a malformed request) goes to moto, which answers it."""
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        raw = _body(environ)
        try:
            request = json.loads(raw)
            iterator = str(request["ShardIterator"])
            limit = int(request.get("Limit") or 1000)
            _, _, _, region, account, _ = iterator.split("|", 1)[0].split(":", 5)
            backend = dynamodbstreams_backends[account][region]
        except (ValueError, KeyError, TypeError):
            return None
        if iterator not in backend.shard_iterators:
            return None
        return _answer(start_response, json.dumps(backend.get_records(iterator, limit), default=_epoch,
                                                   separators=(",", ":")).encode())

    def _send_message(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes] | None:
        """``SendMessage`` of a plain body to a standard queue, put in moto's queue directly.

        moto's own path reads ``Queue.attributes`` twice per message sent, and that property
        computes the queue's approximate counts by walking every message in it, converting two
        datetimes per message and count: with the few hundred orders of a burst queued, that was
        three quarters of the SQS emulator's CPU, paid by every POST (the receives pay it too, once
        per message; see the README's Performance section). The message is made by moto's own
        ``Message`` and appended under the queue's own lock, as moto appends it, so receives, state
        and redrives see no difference (``test_moto_service`` compares the two). Anything else (a
        FIFO queue, message or system attributes, a queue with an event source mapping, a body over
        the queue's limit, an unknown queue, a malformed request) goes to moto, which answers it."""
        from moto.sqs.models import Message, sqs_backends

        raw = _body(environ)
        try:
            request = json.loads(raw)
            body, delay = request["MessageBody"], request.get("DelaySeconds")
            name = str(request["QueueUrl"]).rstrip("/").rpartition("/")[2]
            credential = str(environ.get("HTTP_AUTHORIZATION", "")).split("Credential=", 1)[1]
            region = credential.split("/")[2]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            return None
        if set(request) - {"QueueUrl", "MessageBody", "DelaySeconds"} or not isinstance(body, str) or not body:
            return None
        if delay is not None and (type(delay) is not int or not 0 <= delay <= 900):
            return None
        queue = sqs_backends[ACCOUNT][region].queues.get(name)
        if (queue is None or queue.fifo_queue or queue.lambda_event_source_mappings
                or len(body) > int(queue.maximum_message_size)):
            return None
        message = Message(str(uuid.uuid4()), body)
        message.mark_sent(delay_seconds=int(queue.delay_seconds or 0) if delay is None else delay)
        with queue._messages_lock:
            queue._messages.append(message)
            queue._messages_lock.notify_all()
        self.sent_fast += 1
        return _answer(start_response,
                       json.dumps({"MD5OfMessageBody": message.body_md5, "MessageId": message.id}).encode())

    def _journaled(self, app: WsgiApp, target: str, environ: dict[str, Any],
                   start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A DynamoDB write, in the journal before it is answered (inside the one-at-a-time lock,
        so the journal's order is the order the writes were applied in)."""
        assert self._journal is not None
        raw = _body(environ)
        statuses: list[str] = []

        def answer(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            statuses.append(status)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        body = b"".join(app(environ, answer))
        if statuses and statuses[0].startswith("200"):  # a refused write changed nothing
            self._journal.append({"target": target, "body": raw.decode("utf-8")})
            self._dirty.set()
        return [body]

    def _replay(self, entries: list[dict[str, Any]]) -> int:
        """The journal's writes, in order, through moto's DynamoDB app; how many it accepted."""
        from werkzeug.test import EnvironBuilder

        app = self._apps["dynamodb"]
        scope = f"test/20260101/{self.region}/dynamodb/aws4_request"
        accepted = 0
        statuses: list[str] = []

        def answer(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            statuses.append(status)

        for entry in entries:
            environ = EnvironBuilder(method="POST", path="/", data=str(entry["body"]).encode(), headers={
                "X-Amz-Target": str(entry["target"]), "Content-Type": "application/x-amz-json-1.0",
                "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host, Signature=0",
            }).get_environ()
            statuses.clear()
            b"".join(app(environ, answer))
            if statuses and statuses[0].startswith("200"):
                accepted += 1
            else:
                log.warning("journal write %s (%s) was not accepted again: %s", entry["seq"], entry["target"],
                            statuses)
        return accepted

    # -- state ----------------------------------------------------------------------------------
    def _dump(self) -> dict[str, Any]:
        self._dirty.clear()
        if self._serial is not None:
            with self._serial.lock:  # one instant: no DynamoDB request runs meanwhile
                body = dump_dynamodb(self.region)
                if self._journal is not None:
                    body["journalSeq"] = self._journal.mark()
                return body
        return dump_sqs(self.region)

    def _saved(self, body: dict[str, Any]) -> None:
        """A snapshot is on disk: the journal keeps only the writes after it."""
        if self._journal is not None and self._serial is not None and "journalSeq" in body:
            with self._serial.lock:
                self._journal.trim(int(body["journalSeq"]))

    def start_snapshots(self) -> None:
        if self._snapshots is not None:
            self._snapshots.start()

    def restore(self) -> str | None:
        if self._snapshots is None or self._restored:
            return None
        self._restored = True
        if self._serial is not None:
            with self._serial.lock:
                restored = self._restore_dynamodb(self._snapshots.path)
        else:
            restored = restore(self._snapshots.path, self.service, load_sqs)
        self._dirty.clear()
        self.start_snapshots()
        return restored

    def _restore_dynamodb(self, path: Path) -> str | None:
        """The snapshot, then the journal's writes that follow it."""
        loaded: list[int] = []

        def load(document: dict[str, Any]) -> str:
            described = load_dynamodb(document)
            loaded.append(int(document.get("journalSeq") or 0))
            return described

        existed = path.exists()
        restored = restore(path, self.service, load)
        journal = self._journal
        if journal is None:
            return restored
        seq = loaded[0] if loaded else 0
        entries: list[dict[str, Any]] = []
        if existed and not loaded:
            if journal.path.exists():  # it follows a snapshot that is gone
                journal.set_aside(f"{journal.path}: its snapshot could not be restored")
        else:
            try:
                entries = journal.after(seq)
            except StateError as exc:
                journal.set_aside(str(exc))
        replayed = self._replay(entries)
        journal.start(entries[-1]["seq"] if entries else seq)
        if not entries:
            return restored
        return f"{restored or 'tables: none saved'}; then {replayed} writes from the journal"

    def _control(self, action: str, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        answer: dict[str, Any]
        if action == "ping":
            answer = {"service": self.service, "pid": os.getpid()}
        elif action == "restore" and method == "POST":
            answer = {"restored": self.restore()}
        elif action == "save" and method == "POST":
            saved = self._snapshots is not None and self._restored  # never over a snapshot not restored yet
            if saved and self._snapshots is not None:
                self._snapshots.save(force=True)
            answer = {"saved": saved}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error":"unknown"}']
        body = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def _body(environ: dict[str, Any]) -> bytes:
    """The request's body, read whole and put back, so that whoever answers next reads it again."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw


def _answer(start_response: Callable[..., Any], body: bytes) -> Iterable[bytes]:
    """A 200 in the JSON protocol, as moto answers one."""
    start_response("200 OK", [("Content-Type", "application/x-amz-json-1.0"),
                              ("Content-Length", str(len(body))), ("x-amzn-RequestId", str(uuid.uuid4()))])
    return [body]


def _epoch(value: Any) -> float | str:
    """What JSON cannot write, as the JSON protocol writes it: a record's ApproximateCreationDateTime
    (moto keeps a naive UTC datetime) in epoch seconds to the millisecond, as moto's serializer
    writes it, a binary value in base64."""
    if isinstance(value, datetime):
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000) / 1000
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _build() -> MotoService:
    service = os.environ.get("DEVSTACK_MOTO_SERVICE", "dynamodb")
    state = os.environ.get("DEVSTACK_STATE_DIR")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    built = MotoService(service, os.environ.get("AWS_REGION", "us-east-1"), Path(state) if state else None)
    from .supervise import orphan_guard

    orphan_guard()
    return built


app: Any = None
if os.environ.get("DEVSTACK_MOTO_SERVICE"):  # imported by the emulator's server process
    app = _build()
