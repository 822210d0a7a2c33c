"""Which AWS calls each Lambda function makes, as IAM sees them: recorded while the functional
tests run, so that the packaged policies can be checked against what the code really calls.

- **Attribution.** A Chalice middleware on every event type (``attribute_invocations``) sets
  ``CURRENT_FUNCTION`` for the duration of one invocation: the REST API's handler for a request,
  ``ws_connect`` / ``ws_message`` / ``ws_disconnect`` by the WebSocket event's route, and every
  other handler (SQS, DynamoDB stream, schedule) by the name its invocation carries, as Lambda
  passes it in the context. A call made outside any invocation (a test's own setup and checks)
  belongs to no function and is only counted.
- **Threads.** The handlers fan work out to thread pools (a batch's records, a stream batch's
  connections, a matcher's quotes); ``ThreadPoolExecutor.submit`` runs each task in a copy of the
  submitter's context while recording, so those calls belong to the invocation that made them.
- **Calls.** botocore's ``before-parameter-build`` event on every client the app builds
  (``AwsClients.client``) sees each API call once, before retries, with the parameters the code
  passed. The functional tier's stand-in for API Gateway's management API (``RecordingNotifier``)
  records the call it stands in for (``PostToConnection``, ``GetConnection``) the same way.
- **IAM.** Each call becomes the IAM requests it needs (``iam_requests``): the action
  (``dynamodb:UpdateItem``; the batch SQS operations authorise as their single ones; the
  management API's operations as ``execute-api:ManageConnections``) and the ARN it names (a table,
  one of its indexes, a queue, a parameter, a connection of the WebSocket API).
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = [
    "ACCOUNT",
    "CURRENT_FUNCTION",
    "RECORDER",
    "REST_FUNCTION",
    "WS_API_ID",
    "Call",
    "CallRecorder",
    "attribute_invocations",
    "iam_requests",
    "invoked_as",
    "recording",
]

# moto's account, in which every ARN of the functional tier lives.
ACCOUNT = "123456789012"
# The name the REST API's Lambda goes by (Chalice's, and the key of the policy table).
REST_FUNCTION = "api_handler"
# The WebSocket API's id in the ARNs of @connections calls: the functional tier has no API Gateway,
# so the calls and the policies it checks them against are both put in this API.
WS_API_ID = "wsapi00001"
WS_STAGE = "dev"
_WS_FUNCTIONS = {"$connect": "ws_connect", "$disconnect": "ws_disconnect"}  # any other route: $default
UNKNOWN_FUNCTION = "?"

CURRENT_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("lambda_function", default=None)


@dataclass(frozen=True, order=True)
class Call:
    """One IAM request a function made: an action on a resource (an ARN)."""

    function: str
    action: str
    resource: str


def _function_of(event: Any) -> str:
    from chalice.app import Request, WebsocketEvent

    if isinstance(event, Request):
        return REST_FUNCTION
    if isinstance(event, WebsocketEvent):
        route = str(event.to_dict().get("requestContext", {}).get("routeKey", ""))
        return _WS_FUNCTIONS.get(route, "ws_message")
    context = getattr(event, "context", None)
    name = getattr(context, "function_name", None)
    # On AWS the name is <app>-<stage>-<handler>; Chalice's test client passes the handler's.
    return str(name) if name else UNKNOWN_FUNCTION


def attribute_invocations(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware (every event type): the function that runs, for the invocation's length."""
    token = CURRENT_FUNCTION.set(_function_of(event))
    try:
        return get_response(event)
    finally:
        CURRENT_FUNCTION.reset(token)


@contextmanager
def invoked_as(function: str) -> Iterator[None]:
    """Calls made here belong to ``function``: for a test that runs one function's code inside
    another's invocation (a worker that finishes an order while intake is still sending it)."""
    token = CURRENT_FUNCTION.set(function)
    try:
        yield
    finally:
        CURRENT_FUNCTION.reset(token)


def _arn(service: str, region: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def _table(region: str, name: str, index: str | None = None) -> str:
    return _arn("dynamodb", region, f"table/{name}" + (f"/index/{index}" if index else ""))


def _queue(region: str, params: Mapping[str, Any]) -> str:
    name = params.get("QueueName") or str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    return _arn("sqs", region, str(name))


_TRANSACT_ACTIONS = {"ConditionCheck": "ConditionCheckItem", "Put": "PutItem", "Update": "UpdateItem",
                     "Delete": "DeleteItem", "Get": "GetItem"}
_MANAGEMENT_METHODS = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}


def iam_requests(service: str, operation: str, params: Mapping[str, Any], region: str) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs IAM authorises for one API call."""
    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", _table(region, t)) for t in params.get("RequestItems", {})]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table(region, body["TableName"]))
                    for item in params.get("TransactItems", []) for kind, body in item.items()]
        if "TableName" in params:
            return [(f"dynamodb:{operation}", _table(region, params["TableName"], params.get("IndexName")))]
        if "StreamArn" in params:  # a stream read by the code (the app reads none: its event source does)
            return [(f"dynamodb:{operation}", str(params["StreamArn"]))]
    if service == "dynamodbstreams" and "StreamArn" in params:
        return [(f"dynamodb:{operation}", str(params["StreamArn"]))]
    if service == "sqs" and ("QueueUrl" in params or "QueueName" in params):
        # SendMessageBatch is authorised as sqs:SendMessage, and so on.
        return [(f"sqs:{operation.removesuffix('Batch')}", _queue(region, params))]
    if service == "apigatewaymanagementapi":
        method = _MANAGEMENT_METHODS[operation]
        return [("execute-api:ManageConnections",
                 _arn("execute-api", region, f"{WS_API_ID}/{WS_STAGE}/{method}/@connections/{params['ConnectionId']}"))]
    if service == "ssm" and operation == "GetParameter":
        name = str(params["Name"])
        return [("ssm:GetParameter", _arn("ssm", region, "parameter" + (name if name.startswith("/") else f"/{name}")))]
    if service == "ssm" and operation == "GetParameters":
        return [("ssm:GetParameters", _arn("ssm", region, "parameter" + (n if n.startswith("/") else f"/{n}")))
                for n in map(str, params["Names"])]
    raise AssertionError(f"no IAM mapping for {service}.{operation}({sorted(params)}): add one to iam_requests")


class CallRecorder:
    """Every IAM request made inside an invocation, by function; how many calls were made outside one."""

    def __init__(self) -> None:
        self.calls: Counter[Call] = Counter()
        self.unattributed: Counter[str] = Counter()  # by action: calls made outside any invocation
        self.first_seen: dict[Call, str] = {}  # the test that made a call first
        self.tests = 0  # tests that ran with the recorder on
        self.test: str | None = None  # the one running
        # None when the whole tier is selected to run; else what is missing from it
        self.partial: str | None = None
        self.report: str | None = None  # where test_iam.py wrote the table
        self._lock = threading.Lock()

    def record(self, service: str, operation: str, params: Mapping[str, Any], region: str = "us-east-1") -> None:
        function = CURRENT_FUNCTION.get()
        requests = iam_requests(service, operation, params, region)
        with self._lock:
            if function is None:
                self.unattributed.update(action for action, _ in requests)
                return
            for action, resource in requests:
                call = Call(function, action, resource)
                self.calls[call] += 1
                self.first_seen.setdefault(call, self.test or "?")

    def before_parameter_build(self, params: Mapping[str, Any], model: Any, context: Mapping[str, Any] | None = None,
                               **_: Any) -> None:
        """botocore's ``before-parameter-build`` handler: one event per API call, retries excluded."""
        region = str((context or {}).get("client_region") or "us-east-1")
        self.record(model.service_model.service_name, model.name, params, region)

    def functions(self) -> set[str]:
        return {c.function for c in self.calls}

    def of(self, function: str) -> set[Call]:
        return {c for c in self.calls if c.function == function}

    def table(self) -> str:
        """The call coverage, function → action → resource (connections as one), with how many calls
        and the first test that made one."""
        rows: dict[tuple[str, str, str], list[Any]] = {}
        for call in sorted(self.calls):
            row = rows.setdefault((call.function, call.action, _short(call.resource)), [0, self.first_seen[call]])
            row[0] += self.calls[call]
        lines = ["| function | action | resource | calls | first made by |", "|---|---|---|---|---|"]
        lines += [f"| {f} | {a} | {r} | {n} | {test} |" for (f, a, r), (n, test) in rows.items()]
        return "\n".join(lines)


def _short(arn: str) -> str:
    """The ARN after its account, one connection standing for all: ``table/order-engine-orders``."""
    resource = arn.split(f":{ACCOUNT}:", 1)[-1]
    head, connections, _ = resource.partition("/@connections/")
    return f"{head}/@connections/{{connectionId}}" if connections else resource


RECORDER = CallRecorder()


def _submit_in_context(real: Callable[..., Future[Any]]) -> Callable[..., Future[Any]]:
    def submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return real(self, contextvars.copy_context().run, fn, *args, **kwargs)

    return submit


@contextmanager
def recording(monkeypatch: pytest.MonkeyPatch, test: str, recorder: CallRecorder = RECORDER) -> Iterator[CallRecorder]:
    """Record the calls of every client the app builds while this is open."""
    from chalicelib.adapters.aws import AwsClients

    real_client = AwsClients.client

    def client(self: AwsClients, service: str, endpoint_url: str | None = None, config: Any = None) -> Any:
        built = real_client(self, service, endpoint_url, config)
        built.meta.events.register("before-parameter-build", recorder.before_parameter_build,
                                   unique_id="order-engine-aws-call-recorder")
        return built

    monkeypatch.setattr(AwsClients, "client", client)
    monkeypatch.setattr(ThreadPoolExecutor, "submit", _submit_in_context(ThreadPoolExecutor.submit))
    recorder.tests += 1
    recorder.test = test
    try:
        yield recorder
    finally:
        recorder.test = None
