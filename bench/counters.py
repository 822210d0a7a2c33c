"""Counting what an order costs: every AWS API call (by service and operation) and every
Redis command, in this process, by wrapping the places every call goes through.

Redis commands leave redis-py four ways: a client's ``execute_command``; a pipeline's
``execute`` (its queued commands, plus MULTI and EXEC around them for a transaction); a
pipeline's ``immediate_execute_command`` (WATCH, and the reads that follow it before MULTI);
and the UNWATCH a pipeline's ``reset`` sends when it still watches (a transaction that wrote
nothing). A transaction refused because a watched key changed (EXEC answered nil) is counted
too, apart, as a conflict: its commands were sent all the same."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
import redis.client
import redis.exceptions

# Calls made by Lambda's event source mappings (the local pollers), not by our code: SQS bills
# them all the same, so they are reported, but apart. Lambda's reads of a DynamoDB stream are free.
SQS_POLLER_OPERATIONS = {("sqs", "ReceiveMessage"), ("sqs", "DeleteMessageBatch")}
STREAM_POLLER_OPERATIONS = {("dynamodbstreams", "GetRecords"), ("dynamodbstreams", "GetShardIterator"),
                            ("dynamodbstreams", "DescribeStream")}
POLLER_OPERATIONS = SQS_POLLER_OPERATIONS | STREAM_POLLER_OPERATIONS
# Calls made by the scheduled functions (market tick, expiry sweep), which run on the local schedule
# poller's threads: they cost per minute, not per order, so they are counted apart.
SCHEDULE_THREADS = "devstack-schedule"


def _scheduled() -> bool:
    return threading.current_thread().name.startswith(SCHEDULE_THREADS)


class CallCounter:
    def __init__(self) -> None:
        self.aws: Counter[tuple[str, str]] = Counter()
        self.redis: Counter[str] = Counter()
        self.scheduled_aws: Counter[tuple[str, str]] = Counter()  # by the scheduled functions
        self.scheduled_redis: Counter[str] = Counter()
        self.redis_conflicts = 0
        self.received_messages = 0
        self.non_empty_receives = 0
        self.stream_records = 0
        self.non_empty_stream_reads = 0  # one fan-out invocation each
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.aws.clear()
            self.redis.clear()
            self.scheduled_aws.clear()
            self.scheduled_redis.clear()
            self.redis_conflicts = 0
            self.received_messages = 0
            self.non_empty_receives = 0
            self.stream_records = 0
            self.non_empty_stream_reads = 0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"aws": dict(self.aws), "redis": dict(self.redis), "redisConflicts": self.redis_conflicts,
                    "scheduledAws": {f"{s}:{o}": n for (s, o), n in self.scheduled_aws.items()},
                    "scheduledRedis": dict(self.scheduled_redis),
                    "received": self.received_messages, "nonEmptyReceives": self.non_empty_receives,
                    "streamRecords": self.stream_records, "nonEmptyStreamReads": self.non_empty_stream_reads}

    @contextmanager
    def installed(self) -> Iterator[CallCounter]:
        real_call = botocore.client.BaseClient._make_api_call
        real_execute = redis.client.Redis.execute_command
        real_pipeline = redis.client.Pipeline.execute
        real_immediate = redis.client.Pipeline.immediate_execute_command
        real_reset = redis.client.Pipeline.reset
        counter = self

        def counted_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            with counter._lock:
                # failed calls (conditional checks) count too
                (counter.scheduled_aws if _scheduled() else counter.aws)[(service, operation)] += 1
            result = real_call(client, operation, params)
            if operation == "ReceiveMessage":
                n = len(result.get("Messages", []))
                with counter._lock:
                    counter.received_messages += n
                    counter.non_empty_receives += 1 if n else 0
            elif service == "dynamodbstreams" and operation == "GetRecords":
                n = len(result.get("Records", []))
                with counter._lock:
                    counter.stream_records += n
                    counter.non_empty_stream_reads += 1 if n else 0
            return result

        def redis_counts() -> Counter[str]:
            return counter.scheduled_redis if _scheduled() else counter.redis

        def counted_execute(client: Any, *args: Any, **options: Any) -> Any:
            with counter._lock:
                redis_counts()[str(args[0]).upper()] += 1
            return real_execute(client, *args, **options)

        def counted_pipeline(pipe: Any, raise_on_error: bool = True) -> Any:
            transaction = pipe.transaction or pipe.explicit_transaction
            with counter._lock:
                counts = redis_counts()
                for args, _ in pipe.command_stack:
                    counts[str(args[0]).upper()] += 1
                if transaction and (pipe.command_stack or pipe.watching):
                    counts["MULTI"] += 1
                    counts["EXEC"] += 1
            try:
                return real_pipeline(pipe, raise_on_error)
            except redis.exceptions.WatchError:
                with counter._lock:
                    counter.redis_conflicts += 1
                raise

        def counted_immediate(pipe: Any, *args: Any, **options: Any) -> Any:
            with counter._lock:
                redis_counts()[str(args[0]).upper()] += 1
            return real_immediate(pipe, *args, **options)

        def counted_reset(pipe: Any) -> None:
            if pipe.watching and pipe.connection:
                with counter._lock:
                    redis_counts()["UNWATCH"] += 1
            real_reset(pipe)

        botocore.client.BaseClient._make_api_call = counted_call  # type: ignore[method-assign]
        redis.client.Redis.execute_command = counted_execute  # type: ignore[method-assign]
        redis.client.Pipeline.execute = counted_pipeline  # type: ignore[method-assign]
        redis.client.Pipeline.immediate_execute_command = counted_immediate  # type: ignore[method-assign]
        redis.client.Pipeline.reset = counted_reset  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = real_call  # type: ignore[method-assign]
            redis.client.Redis.execute_command = real_execute  # type: ignore[method-assign]
            redis.client.Pipeline.execute = real_pipeline  # type: ignore[method-assign]
            redis.client.Pipeline.immediate_execute_command = real_immediate  # type: ignore[method-assign]
            redis.client.Pipeline.reset = real_reset  # type: ignore[method-assign]
