"""Lambda's DynamoDB Streams event source mapping, locally: reads the stream of each
``on_dynamodb_record`` source of ``app.event_sources`` and calls its handler with Lambda-shaped
records.

As the mapping does:

- the source's ``stream_arn`` is resolved by its table: the table's current stream is followed
  (the app's local default names the table with a placeholder label, and a table provisioned
  afresh has a new stream anyway);
- shards are listed with ``DescribeStream`` (every page) and read with ``GetShardIterator`` and
  ``GetRecords``, one batch in flight per shard, so a shard's records reach the handler in their
  order; a child shard is read once its parent is done; new shards are found as the stream
  rolls them over;
- starting position: ``LATEST`` (what is written after ``start()`` returns) or ``TRIM_HORIZON``
  (everything the stream holds); a shard found later is read from its beginning;
- up to ``batch_size`` records per invocation, gathered for up to the batching window;
- with ``ReportBatchItemFailures``, a partial batch response checkpoints before the earliest
  reported sequence number and the records from there are retried; a malformed response or an
  unknown sequence number fails the whole batch; without it, any response is a success;
- a function error (the handler raised, or ran past its timeout) retries the batch, split in
  two first when ``BisectBatchOnFunctionError`` is on; after ``MaximumRetryAttempts`` retries
  (-1: until the records expire, which here is never) the records are skipped, and Lambda's
  description of them goes to the on-failure destination queue, if there is one.

Every invocation after the first of a record counts as one retry of it, the halves of a split
batch included.

Lambda reads each shard four times a second, busy or not. moto keeps every shard iterator it hands
out (about 1.7 KB per ``GetRecords``), so ``idle_poll_seconds`` lets a stack that has seen no record
for ``idle_after_seconds`` read less often; by default there is no such slowing down.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from .emulator import ACCOUNT_ID
from .event_sources import EventSourcePoller, Invocation, failed_item_identifiers

__all__ = ["DEFAULT_POLL_SECONDS", "StreamOptions", "StreamPoller", "stream_lambda_record", "table_of_stream"]

log = logging.getLogger("devstack.streams")

DEFAULT_POLL_SECONDS = 0.25  # Lambda reads each shard four times a second
DEFAULT_DISCOVER_SECONDS = 10.0  # how often the shard list is read again while nothing closes
DEFAULT_RETRY_SECONDS = 0.2  # between two invocations of a failed batch
DEFAULT_SHARD_CONCURRENCY = 10  # shards processed at once, per source


@dataclass(frozen=True)
class StreamOptions:
    """What a stream's event source mapping sets beyond Chalice's decorator; Lambda's defaults."""

    report_batch_item_failures: bool = False
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1  # -1: retry until the records expire
    on_failure_queue: str | None = None  # an SQS queue's name

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any], on_failure_queue: str | None = None) -> StreamOptions:
        """From an event source's CloudFormation properties (``FunctionResponseTypes``, …)."""
        return cls(
            report_batch_item_failures="ReportBatchItemFailures" in (properties.get("FunctionResponseTypes") or ()),
            bisect_batch_on_function_error=bool(properties.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", -1)),
            on_failure_queue=on_failure_queue,
        )


def table_of_stream(stream_arn: str) -> str:
    """``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL`` → ``NAME``."""
    resource = stream_arn.split(":", 5)[-1]
    parts = resource.split("/")
    if len(parts) < 2 or parts[0] != "table":
        raise ValueError(f"not a DynamoDB stream ARN: {stream_arn!r}")
    return parts[1]


def stream_lambda_record(record: Mapping[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """One ``GetRecords`` record (as boto3 returns it) as Lambda's event source mapping delivers it:
    the stream's ARN added, the creation time in epoch seconds, binary values in base64."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in change:
            change[image] = {name: _as_json(value) for name, value in change[image].items()}
    shaped: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:  # a deletion by time to live
        shaped["userIdentity"] = dict(record["userIdentity"])
    return shaped


def _as_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute value with its binaries base64-encoded, as in Lambda's JSON event."""
    (kind, inner), = value.items()
    if kind == "B":
        return {kind: base64.b64encode(inner).decode()}
    if kind == "BS":
        return {kind: [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {kind: {k: _as_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {kind: [_as_json(v) for v in inner]}
    return {kind: inner}


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None
    start: str  # the iterator type its first read uses: LATEST or TRIM_HORIZON
    iterator: str | None = None
    position: str | None = None  # the last sequence number read
    busy: bool = False  # a batch of it is being processed
    closed: bool = False  # read to its end: GetRecords gave no next iterator
    done: bool = False  # closed, and every record processed


@dataclass
class _StreamSource:
    name: str
    table: str
    stream_arn: str
    batch_size: int
    window: float
    starting_position: str
    timeout: float
    shards: dict[str, _Shard] = field(default_factory=dict)
    discovered_at: float = 0.0
    last_records_at: float = field(default_factory=time.monotonic)
    wake: threading.Event = field(default_factory=threading.Event)


class StreamPoller(EventSourcePoller):
    """Feeds each DynamoDB stream event source of a Chalice app until ``stop()``.

    ``options`` applies to every stream source (the package configures them alike);
    ``sqs_client`` sends to the on-failure destination queue.
    """

    thread_prefix = "devstack-streams"
    log = log

    def __init__(self, app: Any, streams_client: Any, dynamodb_client: Any, *, region: str = "us-east-1",
                 stage: str = "local", function_timeouts: Mapping[str, float] | None = None,
                 function_memory: Mapping[str, int] | None = None, options: StreamOptions | None = None,
                 sqs_client: Any = None, poll_seconds: float = DEFAULT_POLL_SECONDS,
                 idle_poll_seconds: float | None = None, idle_after_seconds: float = 30.0,
                 discover_seconds: float = DEFAULT_DISCOVER_SECONDS,
                 retry_seconds: float = DEFAULT_RETRY_SECONDS) -> None:
        super().__init__(app, region=region, stage=stage, function_timeouts=function_timeouts,
                         function_memory=function_memory)
        self._streams = streams_client
        self._dynamodb = dynamodb_client
        self._sqs = sqs_client
        self.options = options or StreamOptions()
        self._poll_seconds = poll_seconds
        self._idle_poll_seconds = idle_poll_seconds
        self._idle_after_seconds = idle_after_seconds
        self._discover_seconds = discover_seconds
        self._retry_seconds = retry_seconds
        self._sources: list[_StreamSource] = []

    @property
    def sources(self) -> list[str]:
        """The handler names being fed."""
        return [source.name for source in self._sources]

    def _start(self) -> None:
        from chalice.app import DynamoDBEventConfig

        self._sources = [self._resolve(config) for config in self.app.event_sources
                         if isinstance(config, DynamoDBEventConfig)]
        for source in self._sources:
            self._discover(source, initial=True)  # LATEST iterators now: later writes are seen
            executor = self._pool(DEFAULT_SHARD_CONCURRENCY, source.name)
            self._spawn(f"poll-{source.name}", self._poll, source, executor)
            log.info("reading the stream of %s for %s (batch %d, from %s)", source.table, source.name,
                     source.batch_size, source.starting_position)

    # -- setup ----------------------------------------------------------------------------------
    def _resolve(self, config: Any) -> _StreamSource:
        table = table_of_stream(config.stream_arn)
        description = self._dynamodb.describe_table(TableName=table)["Table"]
        stream_arn = description.get("LatestStreamArn")
        if not stream_arn or not (description.get("StreamSpecification") or {}).get("StreamEnabled"):
            raise RuntimeError(f"table {table} has no stream, so {config.name} cannot be fed")
        if config.starting_position not in ("LATEST", "TRIM_HORIZON"):
            raise ValueError(f"{config.name}: starting position {config.starting_position!r} is not one a "
                             "DynamoDB stream supports (LATEST, TRIM_HORIZON)")
        return _StreamSource(
            name=config.name,
            table=table,
            stream_arn=stream_arn,
            batch_size=max(1, int(config.batch_size)),
            window=float(config.maximum_batching_window_in_seconds or 0),
            starting_position=config.starting_position,
            timeout=self.timeout_of(config.name),
        )

    def _discover(self, source: _StreamSource, *, initial: bool = False) -> None:
        """Read the shard list (every page) and take on the shards not known yet."""
        listed: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": source.stream_arn}
        while True:
            description = self._streams.describe_stream(**request)["StreamDescription"]
            listed.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        ids = {raw["ShardId"] for raw in listed}
        for raw in listed:
            if raw["ShardId"] in source.shards:
                continue
            closed = "EndingSequenceNumber" in (raw.get("SequenceNumberRange") or {})
            latest = initial and source.starting_position == "LATEST"
            shard = _Shard(raw["ShardId"], raw.get("ParentShardId"), "LATEST" if latest else "TRIM_HORIZON")
            if latest and closed:
                shard.closed = shard.done = True  # nothing will be written to it any more
            elif latest:
                shard.iterator = self._iterator(source, shard)
            source.shards[shard.shard_id] = shard
        for shard_id in [i for i, s in source.shards.items() if s.done and i not in ids]:
            del source.shards[shard_id]  # trimmed from the stream
        source.discovered_at = time.monotonic()

    def _iterator(self, source: _StreamSource, shard: _Shard) -> str | None:
        request: dict[str, Any] = {"StreamArn": source.stream_arn, "ShardId": shard.shard_id}
        if shard.position is not None:
            request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=shard.position)
        else:
            request.update(ShardIteratorType=shard.start)
        iterator: str | None = self._streams.get_shard_iterator(**request).get("ShardIterator")
        return iterator

    # -- reading --------------------------------------------------------------------------------
    def _poll(self, source: _StreamSource, executor: ThreadPoolExecutor) -> None:
        while not self.stopping:
            try:
                if time.monotonic() - source.discovered_at >= self._discover_seconds:
                    self._discover(source)
                self._read(source, executor)
            except Exception:
                log.exception("reading the stream of %s failed", source.table)
                self._sleep(1)
                continue
            source.wake.wait(self._interval(source))
            source.wake.clear()

    def _interval(self, source: _StreamSource) -> float:
        idle = time.monotonic() - source.last_records_at > self._idle_after_seconds
        return self._idle_poll_seconds if idle and self._idle_poll_seconds is not None else self._poll_seconds

    def _read(self, source: _StreamSource, executor: ThreadPoolExecutor) -> None:
        for shard in list(source.shards.values()):
            if shard.busy or shard.done or self.stopping:
                continue
            parent = source.shards.get(shard.parent_id or "")
            if parent is not None and not parent.done:
                continue  # a child waits for its parent: per-item order spans the split
            records = self._records(source, shard)
            if records:
                source.last_records_at = time.monotonic()
                shard.busy = True
                executor.submit(self._process, source, shard, records)
            elif shard.closed:
                shard.done = True
                source.discovered_at = 0.0  # its children, if any, are read next

    def _records(self, source: _StreamSource, shard: _Shard) -> list[dict[str, Any]]:
        """The next batch of a shard: up to ``batch_size`` records, within the batching window."""
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + source.window
        while not shard.closed and len(records) < source.batch_size:
            if shard.iterator is None:
                shard.iterator = self._iterator(source, shard)
            try:
                response = self._streams.get_records(ShardIterator=shard.iterator,
                                                     Limit=source.batch_size - len(records))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ExpiredIteratorException":
                    raise
                shard.iterator = None  # expired (15 minutes on AWS): ask again from the position
                continue
            got = response.get("Records", [])
            records.extend(got)
            if got:
                shard.position = _sequence(got[-1])
            shard.iterator = response.get("NextShardIterator")
            if shard.iterator is None:
                shard.closed = True
            left = deadline - time.monotonic()
            if not records or left <= 0 or self._sleep(min(self._poll_seconds, left)):
                break
        return records

    # -- invoking -------------------------------------------------------------------------------
    def _process(self, source: _StreamSource, shard: _Shard, records: list[dict[str, Any]]) -> None:
        """Invoke until the batch succeeds or is given up; retries and splits keep shard order."""
        try:
            pending: deque[tuple[list[dict[str, Any]], int]] = deque([(records, 0)])
            while pending and not self.stopping:
                batch, retries = pending.popleft()
                shaped = [stream_lambda_record(r, source.stream_arn, self._region) for r in batch]
                invocation = self.invoke(source.name, {"Records": shaped})
                retry_from = self._retry_from(source, invocation, shaped)
                if retry_from is None:
                    continue
                rest = batch[retry_from:]
                limit = self.options.maximum_retry_attempts
                if 0 <= limit <= retries:
                    self._give_up(source, shard, rest, retries + 1, invocation)
                    continue
                if self._sleep(self._retry_seconds):
                    break
                if invocation.failed and self.options.bisect_batch_on_function_error and len(rest) > 1:
                    half = len(rest) // 2
                    pending.appendleft((rest[half:], retries + 1))
                    pending.appendleft((rest[:half], retries + 1))
                else:
                    pending.appendleft((rest, retries + 1))
        except Exception:
            log.exception("processing a batch of %s failed", source.name)
        finally:
            shard.busy = False
            source.wake.set()

    def _retry_from(self, source: _StreamSource, invocation: Invocation,
                    records: Sequence[Mapping[str, Any]]) -> int | None:
        """The index of the first record to invoke again; None when the batch is done."""
        if invocation.error is not None:
            log.error("%s failed on a batch of %d records", source.name, len(records), exc_info=invocation.error)
            return 0
        if invocation.timed_out:
            log.warning("%s ran %.1f s, past its %g s timeout", source.name, invocation.elapsed, source.timeout)
            return 0
        if not self.options.report_batch_item_failures:
            return None
        sequences = [_sequence(r) for r in records]
        failed = failed_item_identifiers(invocation.response, sequences)
        if failed is None:
            log.warning("%s returned an invalid batch response; the whole batch is retried: %r",
                        source.name, invocation.response)
            return 0
        if not failed:
            return None
        return min(sequences.index(sequence) for sequence in failed)

    def _give_up(self, source: _StreamSource, shard: _Shard, records: list[dict[str, Any]], invocations: int,
                 last: Invocation) -> None:
        first, final = _sequence(records[0]), _sequence(records[-1])
        log.error("%s: giving up records %s..%s of shard %s after %d invocations", source.name, first, final,
                  shard.shard_id, invocations)
        if not self.options.on_failure_queue or self._sqs is None:
            return
        created = [r["dynamodb"].get("ApproximateCreationDateTime") for r in records]
        try:
            url = self._sqs.get_queue_url(QueueName=self.options.on_failure_queue)["QueueUrl"]
            self._sqs.send_message(QueueUrl=url, MessageBody=json.dumps({
                "requestContext": {
                    "requestId": str(uuid.uuid4()),
                    "functionArn": f"arn:aws:lambda:{self._region}:{ACCOUNT_ID}:function:"
                                   f"{self.app.app_name}-{self._stage}-{source.name}",
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": invocations,
                },
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                    **({"functionError": "Unhandled"} if last.failed else {})},
                "version": "1.0",
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "DDBStreamBatchInfo": {
                    "shardId": shard.shard_id,
                    "startSequenceNumber": first,
                    "endSequenceNumber": final,
                    "approximateArrivalOfFirstRecord": _iso(created[0]),
                    "approximateArrivalOfLastRecord": _iso(created[-1]),
                    "batchSize": len(records),
                    "streamArn": source.stream_arn,
                },
            }))
        except Exception:
            log.exception("could not send the failure of %s to %s", source.name, self.options.on_failure_queue)


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None
