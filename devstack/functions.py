"""The event-source runtime: every poller that feeds the app's Lambda handlers (Lambda's event
source mappings, locally), built the same way in a thread of ``DevStack`` and in a process of
its own under ``order-engine run``.

``POLLERS`` lists how each kind of source is built: SQS queues, DynamoDB streams, schedules.
Each builder gets the ``Runtime`` (the app, its stage's config, the region and the AWS endpoint
of each service) and returns a poller with ``start()``/``stop()``, or None when the app declares
no such source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["POLLERS", "Poller", "Runtime", "build_pollers", "start_pollers", "stop_pollers"]

log = logging.getLogger("devstack")

# How often the stream poller reads a shard: Lambda reads four times a second; here ten, since a
# read of the embedded emulator costs a few milliseconds and a status reaches its socket sooner.
# After half a minute without a record, once a second: moto keeps every shard iterator it hands out
# (about 1.7 KB a read), which would cost a stack left idle some 60 MB an hour at ten reads a second.
STREAM_POLL_SECONDS = 0.1
STREAM_IDLE_POLL_SECONDS = 1.0


class Poller(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Runtime:
    """What every poller needs: the app, its stage, and where each AWS service answers."""

    app: Any
    stage: str
    region: str
    endpoints: Mapping[str, str | None]  # boto3 service name -> endpoint URL (None: AWS)
    scoped: Mapping[str, Any]  # handler name -> its Chalice config for the stage
    parameter_validation: bool = True
    clients: list[Any] = field(default_factory=list)

    def client(self, service: str) -> Any:
        """A boto3 client of ``service``, closed with the runtime."""
        import boto3
        from botocore.config import Config

        config = Config(parameter_validation=self.parameter_validation, max_pool_connections=32)
        made = boto3.client(service, endpoint_url=self.endpoints.get(service), region_name=self.region,  # type: ignore[call-overload]
                            config=config)
        self.clients.append(made)
        return made

    def timeouts(self) -> dict[str, float]:
        return {name: c.lambda_timeout or 60 for name, c in self.scoped.items()}

    def memory(self) -> dict[str, int]:
        return {name: c.lambda_memory_size or 128 for name, c in self.scoped.items()}

    def close(self) -> None:
        clients, self.clients = self.clients, []
        for made in clients:
            try:
                made.close()
            except Exception:
                log.exception("closing a poller's client failed")


def _stream_poller(runtime: Runtime, sqs: Any) -> Any:
    """The app's stream sources, set up as the package sets them up on AWS."""
    from chalice.app import DynamoDBEventConfig

    if not any(isinstance(s, DynamoDBEventConfig) for s in runtime.app.event_sources):
        return None
    from infra.package import STREAM_EVENT_SOURCE, STREAM_FAILURE_QUEUE
    from infra.provision import template_resources

    from .stream_poller import StreamOptions, StreamPoller

    failures = template_resources()[STREAM_FAILURE_QUEUE]["Properties"]["QueueName"]
    return StreamPoller(
        runtime.app, runtime.client("dynamodbstreams"), runtime.client("dynamodb"), region=runtime.region,
        stage=runtime.stage, sqs_client=sqs,
        options=StreamOptions.from_properties(STREAM_EVENT_SOURCE, on_failure_queue=failures),
        function_timeouts=runtime.timeouts(), function_memory=runtime.memory(),
        poll_seconds=STREAM_POLL_SECONDS, idle_poll_seconds=STREAM_IDLE_POLL_SECONDS,
    )


def _sqs_poller(runtime: Runtime, sqs: Any) -> Any:
    from .sqs_poller import SqsPoller

    return SqsPoller(runtime.app, sqs, region=runtime.region, stage=runtime.stage,
                     function_timeouts=runtime.timeouts(), function_memory=runtime.memory())


def _schedule_poller(runtime: Runtime, sqs: Any) -> Any:
    """The app's schedules, at the rates the environment sets (``MARKET_TICK_SECONDS``, …)."""
    import os

    from chalice.app import ScheduledEventConfig

    from .schedule_poller import SchedulePoller, rates_from_env

    names = [s.name for s in runtime.app.event_sources if isinstance(s, ScheduledEventConfig)]
    if not names:
        return None
    rates, at_most = rates_from_env(names, os.environ)
    return SchedulePoller(runtime.app, region=runtime.region, stage=runtime.stage, rates=rates, at_most=at_most,
                          function_timeouts=runtime.timeouts(), function_memory=runtime.memory())


# In start order: the stream poller reads from the stream's end before any order is written.
POLLERS: list[tuple[str, Callable[[Runtime, Any], Any]]] = [
    ("stream poller", _stream_poller),
    ("SQS poller", _sqs_poller),
    ("schedule poller", _schedule_poller),
]


def build_pollers(runtime: Runtime) -> list[tuple[str, Poller]]:
    """Every poller the app needs, in start order (not started)."""
    sqs = runtime.client("sqs")
    built = []
    for name, build in POLLERS:
        poller = build(runtime, sqs)
        if poller is not None:
            built.append((name, poller))
    return built


def start_pollers(pollers: list[tuple[str, Poller]]) -> None:
    for _, poller in pollers:
        poller.start()


def stop_pollers(pollers: list[tuple[str, Poller]]) -> None:
    """In reverse order; a failure to stop one is logged and the others still stop."""
    for name, poller in reversed(pollers):
        try:
            poller.stop()
        except Exception:
            log.exception("stopping the %s failed", name)
