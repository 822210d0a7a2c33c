"""Package the app for CloudFormation: ``chalice package`` merged with infra/template.yaml, then patched.

    python -m infra.package --stage dev --out build/package

Chalice merges the template (queues, DLQ, tables) into its SAM template. What a merge cannot
express is applied afterwards to the generated ``sam.json``, because Chalice's merge is a deep
dict merge and the function logical ids are only known once Chalice has run:

- every SQS event source reports partial batch failures (``ReportBatchItemFailures``);
- every DynamoDB stream event source reads the real stream of its table (``Fn::GetAtt
  [Table, StreamArn]``, where the app registers a placeholder that names the table), reports
  partial batch failures, splits a batch on a function error, stops retrying after
  ``MaximumRetryAttempts`` and sends what it gave up on to an on-failure queue
  (``STREAM_EVENT_SOURCE``);
- every function's environment takes the table and queue names from the resources
  (``Ref`` / ``Fn::GetAtt``) and the WebSocket API id and URLs from Chalice's ``WebsocketAPI``;
- every function's role gets a policy of its own: the actions its code calls, each on the
  resources it calls them on (``FUNCTION_CALLS``: tables, indexes, queues, the WebSocket API's
  ``@connections`` by method, the API keys' parameter), then what Lambda does with the role
  (log groups, its own event-source queue or stream and on-failure queue). The functional tests
  record every call each function makes and check both ways against the packaged policies;
- ``ApiKeys``, ``ApiKeysParameter`` (with the KMS key that encrypts it, if not ``aws/ssm``) and
  ``RedisUrl`` become stack parameters; the parameter's statements exist only when it is given;
- the REST API's OpenAPI definition gets the gateway responses of ``infra.gateway_responses``
  (``x-amazon-apigateway-gateway-responses``), so what API Gateway answers by itself (an unknown
  path, a body over its limit) is in the contract's error shape. They go into the definition,
  not into separate ``AWS::ApiGateway::GatewayResponse`` resources: a change to the definition
  redeploys the stage with them, while separate resources are not part of the deployment that
  SAM creates from the definition.

Chalice is driven through its Python API in this process (it imports ``app.py`` and sets the
stage's environment variables here), so that the IAM policy file it insists on when
``autogen_policy`` is false can be a placeholder that the patch replaces.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.gateway_responses import openapi_extension
from infra.provision import QUEUE_TYPE, TABLE_TYPE, TEMPLATE_PATH, load_template

__all__ = [
    "ENVIRONMENT",
    "FUNCTION_CALLS",
    "PARAMETERS",
    "RESOURCES",
    "SERVICE_SIDS",
    "STREAM_EVENT_SOURCE",
    "STREAM_FAILURE_QUEUE",
    "PackageError",
    "build_policy",
    "function_name",
    "main",
    "package",
    "patch_template",
]

PROJECT_DIR = Path(__file__).resolve().parent.parent
FUNCTION_TYPE = "AWS::Serverless::Function"
REST_API = "RestAPI"
GATEWAY_RESPONSES_KEY = "x-amazon-apigateway-gateway-responses"
WEBSOCKET_API = "WebsocketAPI"
WEBSOCKET_STAGE = "WebsocketAPIStage"

# Environment variable → the template resource it names, and how to get that name.
ENVIRONMENT: dict[str, dict[str, Any]] = {
    "ORDERS_TABLE": {"Ref": "OrdersTable"},
    "CONNECTIONS_TABLE": {"Ref": "ConnectionsTable"},
    "ORDERS_QUEUE": {"Fn::GetAtt": ["OrdersQueue", "QueueName"]},
    "ORDERS_DLQ": {"Fn::GetAtt": ["OrdersDeadLetterQueue", "QueueName"]},
    "MARKET_EVENTS_QUEUE": {"Fn::GetAtt": ["MarketEventsQueue", "QueueName"]},
    "ORDERS_TABLE_STREAM_ARN": {"Fn::GetAtt": ["OrdersTable", "StreamArn"]},
}
# Stack parameters → environment variables. Keys come from ApiKeys or, when ApiKeysParameter names
# one, from that SSM SecureString parameter; with neither, a deployed stage refuses every request
# (503 keys_unavailable: keys fail closed), so both may be left empty at deploy time.
PARAMETERS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "ApiKeys": ("API_KEYS", {
        "Type": "String", "NoEcho": True, "Default": "",
        "Description": "API keys and their clients: key1:clientA,key2:clientB (or use ApiKeysParameter)",
    }),
    "ApiKeysParameter": ("API_KEYS_PARAMETER", {
        "Type": "String", "Default": "", "AllowedPattern": r"^(/[A-Za-z0-9_.\-/]+)?$",
        "Description": "The name, from its leading /, of an SSM SecureString parameter holding the API keys "
                       "(key1:clientA,...), read instead of ApiKeys; empty: none",
    }),
    "ApiKeysParameterKey": (None, {
        "Type": "String", "Default": "",
        "AllowedPattern": r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+)?$",
        "Description": "The ARN of the customer managed KMS key that encrypts ApiKeysParameter; empty: the "
                       "AWS managed key aws/ssm, which lets every principal of the account decrypt through SSM",
    }),
    "RedisUrl": ("REDIS_URL", {
        "Type": "String", "MinLength": 1,
        "Description": "Redis for rate limits and live state, e.g. rediss://user:pass@host:6379/0",
    }),
}
API_KEYS_FROM_PARAMETER = "ApiKeysFromParameter"
API_KEYS_PARAMETER_KEY_GIVEN = "ApiKeysParameterKeyGiven"
CONDITIONS: dict[str, Any] = {
    API_KEYS_FROM_PARAMETER: {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiKeysParameter"}, ""]}]},
    API_KEYS_PARAMETER_KEY_GIVEN: {"Fn::And": [
        {"Condition": API_KEYS_FROM_PARAMETER},
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiKeysParameterKey"}, ""]}]},
    ]},
}

# -- IAM: what each function's code calls, on which resource ------------------------------------
# The resources the code names, each with the ARN IAM sees (a function of the WebSocket stage) and
# what must exist for it. A statement's Sid is the resource's name here.
TABLE, INDEX, QUEUE, CONNECTIONS, PARAMETER = "table", "index", "queue", "connections", "parameter"
RESOURCES: dict[str, tuple[str, str]] = {  # name → (kind, what: a logical id, Table/index, HTTP method)
    "OrdersTable": (TABLE, "OrdersTable"),
    "OrdersByClient": (INDEX, "OrdersTable/byClient"),
    "OrdersWaiting": (INDEX, "OrdersTable/waiting"),
    "ConnectionsTable": (TABLE, "ConnectionsTable"),
    "OrdersQueue": (QUEUE, "OrdersQueue"),
    "OrdersDeadLetterQueue": (QUEUE, "OrdersDeadLetterQueue"),
    "MarketEventsQueue": (QUEUE, "MarketEventsQueue"),
    "PushToConnections": (CONNECTIONS, "POST"),  # PostToConnection
    "AskConnections": (CONNECTIONS, "GET"),  # GetConnection: is the socket open yet?
    "ApiKeysParameter": (PARAMETER, "ApiKeysParameter"),  # only when the stack names one
}
SEND = ("sqs:GetQueueUrl", "sqs:SendMessage")  # the URL is resolved by name, once per container
BACK_OFF = ("sqs:GetQueueUrl", "sqs:ChangeMessageVisibility")  # a failed record's retry, timed by the code
MANAGE_CONNECTIONS = ("execute-api:ManageConnections",)
READ_KEYS = ("ssm:GetParameter",)

# Function (Chalice's name: the REST API's is api_handler, the others their handler's) → resource →
# the actions its code calls there. Every call the functional tests record must be allowed here,
# and every action here must be one they record (tests/functional/test_iam.py). Any function that
# reads the simulated market may apply the ticks and landings due, which go out as market events
# where orders wait: so SEND on MarketEventsQueue for each of those.
FUNCTION_CALLS: dict[str, dict[str, tuple[str, ...]]] = {
    # orders in, read, listed (byClient) and cancelled; withdrawn when they could not be queued
    "api_handler": {
        "OrdersTable": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        "OrdersByClient": ("dynamodb:Query",),
        "OrdersQueue": (*SEND, "sqs:GetQueueAttributes"),  # the health check asks the queue itself
        "MarketEventsQueue": SEND,
        "ApiKeysParameter": READ_KEYS,
    },
    # authenticates, records the connection, queues a ?orderId= subscription for the worker
    "ws_connect": {
        "ConnectionsTable": ("dynamodb:PutItem",),
        "OrdersQueue": SEND,
        "ApiKeysParameter": READ_KEYS,
    },
    # execute (intake, withdraw included), subscribe, unsubscribe, cancel; replies and snapshots
    "ws_message": {
        "ConnectionsTable": ("dynamodb:GetItem",),
        "OrdersTable": ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"),
        "OrdersQueue": SEND,
        "PushToConnections": MANAGE_CONNECTIONS,
    },
    "ws_disconnect": {
        "ConnectionsTable": ("dynamodb:DeleteItem",),
    },
    # executes orders and arms limit orders; runs ?orderId= subscriptions once their socket is open
    "process_orders": {
        "OrdersTable": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
        "ConnectionsTable": ("dynamodb:GetItem",),
        "OrdersQueue": BACK_OFF,
        "MarketEventsQueue": SEND,
        "PushToConnections": MANAGE_CONNECTIONS,
        "AskConnections": MANAGE_CONNECTIONS,
    },
    # fails what is stuck, or asks again when the order's blockhash has expired
    "process_dead_letters": {
        "OrdersTable": ("dynamodb:GetItem", "dynamodb:UpdateItem"),
        "OrdersDeadLetterQueue": BACK_OFF,
        "MarketEventsQueue": SEND,
    },
    # pushes each image's new events; forgets connections that are gone
    "fan_out_order_events": {
        "OrdersTable": ("dynamodb:UpdateItem",),
        "ConnectionsTable": ("dynamodb:DeleteItem",),
        "PushToConnections": MANAGE_CONNECTIONS,
    },
    # confirms candidates with a quote, triggers them (waiting → routing), queues them
    "match_market_events": {
        "OrdersTable": ("dynamodb:UpdateItem",),
        "OrdersWaiting": ("dynamodb:Query",),
        "OrdersQueue": SEND,
        "MarketEventsQueue": SEND,
    },
    "market_tick": {
        "MarketEventsQueue": SEND,
    },
    # expires overdue waiting orders, sends again a trigger whose message was lost, rebuilds the book
    "expiry_sweep": {
        "OrdersTable": ("dynamodb:UpdateItem",),
        "OrdersWaiting": ("dynamodb:Query",),
        "OrdersQueue": SEND,
    },
}
REST_FUNCTION = "api_handler"
REST_FUNCTION_ID = "APIHandler"  # Chalice's logical id of the REST API's function

# What AWS does with a function's role on its behalf, beyond the code's calls: Lambda writes its
# logs and runs its event source mappings (and on-failure destination) with it, and SSM decrypts a
# SecureString with the caller's permission on its KMS key. These statements carry these Sids.
LAMBDA_LOGS_SID = "LambdaLogs"
CONSUME_SID = "LambdaConsumesItsQueue"
READ_STREAM_SID = "LambdaReadsItsStream"
ON_FAILURE_SID = "LambdaReportsGivenUpRecords"
DECRYPT_SID = "SsmDecryptsApiKeysParameter"
SERVICE_SIDS = frozenset({LAMBDA_LOGS_SID, CONSUME_SID, READ_STREAM_SID, ON_FAILURE_SID, DECRYPT_SID})

# How every DynamoDB stream event source is set up beyond what Chalice writes. The local stack's
# stream poller applies the same (devstack/stack.py).
STREAM_EVENT_SOURCE: dict[str, Any] = {
    # the fan-out reports the earliest record it could not deliver; Lambda retries from there
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    # a crash (a bug, a poison record) splits the batch until the bad record stands alone
    "BisectBatchOnFunctionError": True,
    # a shard is held while its batch is retried: after this many retries the batch is skipped
    # (a client recovers with afterSeq) and its description goes to the on-failure queue
    "MaximumRetryAttempts": 5,
}
# The on-failure destination of every stream event source: a queue of infra/template.yaml.
STREAM_FAILURE_QUEUE = "FanoutFailuresQueue"

QUEUE_CONSUME_ACTIONS = [
    "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes",
]
LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
# What Lambda's event source mapping needs to read a stream (it runs with the function's role).
STREAM_READ_ACTIONS = [
    "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
]

# Handed to Chalice only to satisfy `autogen_policy: false`; patch_template replaces it.
_PLACEHOLDER_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::000000000000:role/placeholder"},
]}


class PackageError(RuntimeError):
    """The generated template does not fit the infra template."""


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _queue_name_from_event(queue: Any) -> str:
    """The queue name in an SQS event's ``Queue`` (Chalice writes an ARN with ``Fn::Sub``)."""
    if isinstance(queue, dict) and "Fn::Sub" in queue:
        text = queue["Fn::Sub"]
        text = text[0] if isinstance(text, list) else text
        return str(text).rsplit(":", 1)[-1]
    if isinstance(queue, str):
        return queue.rsplit(":", 1)[-1]
    raise PackageError(f"unexpected SQS event Queue: {queue!r}")


def _sqs_events(function: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    events = function.get("Properties", {}).get("Events", {}) or {}
    return {name: e for name, e in events.items() if e.get("Type") == "SQS"}


def _stream_events(function: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    events = function.get("Properties", {}).get("Events", {}) or {}
    return {name: e for name, e in events.items() if e.get("Type") == "DynamoDB"}


def _streamed_tables(resources: Mapping[str, Any]) -> dict[str, str]:
    """Table name → logical id, for the template's tables that have a stream."""
    return {r["Properties"]["TableName"]: name for name, r in resources.items()
            if r.get("Type") == TABLE_TYPE and "StreamSpecification" in r.get("Properties", {})}


def _table_of_stream(stream: Any) -> str:
    """The table a stream event's ``Stream`` names: ``arn:…:table/NAME/stream/LABEL``."""
    if not isinstance(stream, str) or "/stream/" not in stream or ":table/" not in stream:
        raise PackageError(f"unexpected DynamoDB event Stream: {stream!r}")
    return stream.split(":table/", 1)[1].split("/", 1)[0]


def _handler_name(function: Mapping[str, Any]) -> str:
    return str(function.get("Properties", {}).get("Handler", "")).rsplit(".", 1)[-1]


def _queues_by_name(resources: Mapping[str, Any]) -> dict[str, str]:
    return {r["Properties"]["QueueName"]: name for name, r in resources.items() if r.get("Type") == QUEUE_TYPE}


def _index_names(table: Mapping[str, Any]) -> set[str]:
    return {i["IndexName"] for i in table.get("Properties", {}).get("GlobalSecondaryIndexes", [])}


def _resource_arn(name: str, infra: Mapping[str, Any], ws_stage: str | None) -> Any:
    """The ARN (an intrinsic) of one of ``RESOURCES``, checked against the template."""
    kind, what = RESOURCES[name]
    if kind in (TABLE, QUEUE):
        expected = TABLE_TYPE if kind == TABLE else QUEUE_TYPE
        if infra.get(what, {}).get("Type") != expected:
            raise PackageError(f"{name}: {TEMPLATE_PATH.name} has no {expected} {what}")
        return _arn(what)
    if kind == INDEX:
        table, index = what.split("/")
        if index not in _index_names(infra.get(table, {})):
            raise PackageError(f"{name}: {table} of {TEMPLATE_PATH.name} has no index {index}")
        return {"Fn::Sub": f"${{{table}.Arn}}/index/{index}"}
    if kind == CONNECTIONS:
        if ws_stage is None:
            raise PackageError(f"{name}: the app has no WebSocket API")
        return {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                           f"${{{WEBSOCKET_API}}}/{ws_stage}/{what}/@connections/*"}
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{what}}}"}


def build_policy(function: str, ws_stage: str | None, *, consumed_queues: Sequence[str] = (),
                 read_streams: Sequence[str] = (), failure_queues: Sequence[str] = ()) -> dict[str, Any]:
    """The policy of one function's role: what its code calls (``FUNCTION_CALLS``), one statement
    per resource; then what Lambda does with the role: its logs, its event-source queues, the
    streams it reads (by table) and where it reports what it gave up on."""
    try:
        calls = FUNCTION_CALLS[function]
    except KeyError:
        raise PackageError(f"function {function} has no entry in FUNCTION_CALLS: list what its code "
                           "calls there") from None
    infra = load_template()["Resources"]
    statements: list[dict[str, Any]] = []
    for name, actions in calls.items():
        statement = {"Sid": name, "Effect": "Allow", "Action": list(actions),
                     "Resource": [_resource_arn(name, infra, ws_stage)]}
        if RESOURCES[name][0] != PARAMETER:
            statements.append(statement)
            continue
        # Only when the stack names a parameter; and SSM decrypts it with the caller's permission on
        # a customer managed key (the AWS managed key aws/ssm needs none).
        statements.append({"Fn::If": [API_KEYS_FROM_PARAMETER, statement, {"Ref": "AWS::NoValue"}]})
        statements.append({"Fn::If": [API_KEYS_PARAMETER_KEY_GIVEN, {
            "Sid": DECRYPT_SID, "Effect": "Allow", "Action": ["kms:Decrypt"],
            "Resource": [{"Ref": "ApiKeysParameterKey"}],
            "Condition": {"StringEquals": {"kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}}},
        }, {"Ref": "AWS::NoValue"}]})
    statements.append({
        "Sid": LAMBDA_LOGS_SID,
        "Effect": "Allow",
        "Action": LOG_ACTIONS,
        "Resource": [
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/*"},
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
                        ":log-group:/aws/lambda/*:log-stream:*"},
        ],
    })
    if consumed_queues:
        statements.append({"Sid": CONSUME_SID, "Effect": "Allow", "Action": QUEUE_CONSUME_ACTIONS,
                           "Resource": [_arn(q) for q in consumed_queues]})
    if read_streams:
        statements.append({"Sid": READ_STREAM_SID, "Effect": "Allow", "Action": STREAM_READ_ACTIONS,
                           "Resource": [{"Fn::GetAtt": [t, "StreamArn"]} for t in read_streams]})
    if failure_queues:
        statements.append({"Sid": ON_FAILURE_SID, "Effect": "Allow", "Action": ["sqs:SendMessage"],
                           "Resource": [_arn(q) for q in failure_queues]})
    return {"Version": "2012-10-17", "Statement": statements}


def function_name(logical_id: str, function: Mapping[str, Any]) -> str:
    """Chalice's name of a function of the template: ``api_handler`` for the REST API's, else its
    handler's (``chalicelib.api.workers.process_orders`` → ``process_orders``)."""
    return REST_FUNCTION if logical_id == REST_FUNCTION_ID else _handler_name(function)


def _role_of(function: Mapping[str, Any]) -> str:
    role = function.get("Properties", {}).get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        return str(role["Fn::GetAtt"][0])
    raise PackageError(f"function role is not a role of this template: {role!r}")


def patch_template(sam: dict[str, Any]) -> dict[str, Any]:
    """Apply what a merge cannot express to Chalice's SAM template (in place; also returned)."""
    resources: dict[str, Any] = sam["Resources"]
    infra = load_template()["Resources"]
    missing = sorted(set(infra) - set(resources))
    if missing:
        raise PackageError(f"the merge did not bring in {missing}")
    queues = _queues_by_name(infra)
    streamed = _streamed_tables(infra)
    ws_stage: str | None = None
    if WEBSOCKET_API in resources:
        ws_stage = str(resources.get(WEBSOCKET_STAGE, {}).get("Properties", {}).get("StageName", "$default"))
    parameters = sam.setdefault("Parameters", {})
    for name, (_, spec) in PARAMETERS.items():
        parameters[name] = dict(spec)
    sam.setdefault("Conditions", {}).update(json.loads(json.dumps(CONDITIONS)))

    rest_api = resources.get(REST_API)
    if rest_api is not None:
        definition = rest_api.get("Properties", {}).get("DefinitionBody")
        if not isinstance(definition, dict):
            raise PackageError(f"{REST_API} has no inline OpenAPI definition to add the gateway responses to")
        definition[GATEWAY_RESPONSES_KEY] = openapi_extension()

    functions = {n: r for n, r in resources.items() if r.get("Type") == FUNCTION_TYPE}
    if not functions:
        raise PackageError("Chalice generated no functions")
    for name, function in functions.items():
        props = function["Properties"]
        consumed: list[str] = []
        for event_name, event in _sqs_events(function).items():
            event_props = event["Properties"]
            queue_name = _queue_name_from_event(event_props["Queue"])
            if queue_name not in queues:
                raise PackageError(f"{name}.{event_name} reads queue {queue_name!r}, which {TEMPLATE_PATH.name} "
                                   f"does not define (it defines {sorted(queues)})")
            event_props["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
            consumed.append(queues[queue_name])
        read_streams: list[str] = []
        for event_name, event in _stream_events(function).items():
            event_props = event["Properties"]
            table_name = _table_of_stream(event_props["Stream"])
            if table_name not in streamed:
                raise PackageError(f"{name}.{event_name} reads the stream of table {table_name!r}, which "
                                   f"{TEMPLATE_PATH.name} does not stream (it streams {sorted(streamed)})")
            event_props["Stream"] = {"Fn::GetAtt": [streamed[table_name], "StreamArn"]}
            event_props.update(json.loads(json.dumps(STREAM_EVENT_SOURCE)))
            event_props["DestinationConfig"] = {"OnFailure": {"Destination": _arn(STREAM_FAILURE_QUEUE)}}
            read_streams.append(streamed[table_name])

        variables = props.setdefault("Environment", {}).setdefault("Variables", {})
        for var, ref in ENVIRONMENT.items():
            variables[var] = json.loads(json.dumps(ref))
        for param, (variable, _) in PARAMETERS.items():
            if variable is not None:
                variables[variable] = {"Ref": param}
        if ws_stage is not None:
            variables["WS_API_ID"] = {"Ref": WEBSOCKET_API}
            host = f"${{{WEBSOCKET_API}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{ws_stage}"
            variables["WS_PUBLIC_URL"] = {"Fn::Sub": f"wss://{host}"}
            variables["WS_MANAGEMENT_ENDPOINT"] = {"Fn::Sub": f"https://{host}"}

        role_name = _role_of(function)
        role = resources.get(role_name)
        if not role or role.get("Type") != "AWS::IAM::Role":
            raise PackageError(f"{name}: role {role_name} is not in the template")
        policy = build_policy(function_name(name, function), ws_stage, consumed_queues=sorted(set(consumed)),
                              read_streams=sorted(set(read_streams)),
                              failure_queues=[STREAM_FAILURE_QUEUE] if read_streams else [])
        role["Properties"]["Policies"] = [{"PolicyName": f"{role_name}Policy", "PolicyDocument": policy}]
    stale = sorted(set(FUNCTION_CALLS) - {function_name(n, f) for n, f in functions.items()})
    if stale:
        raise PackageError(f"FUNCTION_CALLS lists {stale}, which the app does not define")
    return sam


def _chalice_package(project_dir: Path, stage: str, out: Path, merge_template: Path, policy_file: Path) -> None:
    """What ``chalice package --stage STAGE --merge-template MERGE OUT`` does, with a given IAM policy file."""
    from chalice.cli.factory import CLIFactory

    factory = CLIFactory(str(project_dir), environ=os.environ)
    config = factory.create_config_obj(stage, user_provided_params={"iam_policy_file": str(policy_file)})
    options = factory.create_package_options()
    packager = factory.create_app_packager(config, options, "cloudformation", "json", str(merge_template))
    packager.package_app(config, str(out), stage)


def package(stage: str = "dev", out: Path | str = "build/package", project_dir: Path = PROJECT_DIR,
            region: str = "us-east-1") -> Path:
    """Write ``OUT/sam.json`` and ``OUT/deployment.zip``; returns the template's path."""
    out = Path(out)
    if not out.is_absolute():
        out = project_dir / out
    out.mkdir(parents=True, exist_ok=True)
    # Chalice wants a configured AWS region to pick service principals; the template uses pseudo parameters.
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    if not (project_dir / "requirements.txt").exists():
        print("note: no requirements.txt, so deployment.zip holds the app code only; its third-party "
              "packages must come from a requirements.txt or a layer", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        policy_file = Path(tmp) / "policy.json"
        policy_file.write_text(json.dumps(_PLACEHOLDER_POLICY), encoding="utf-8")
        # The template as JSON: Chalice writes sam.yaml instead of sam.json when the merge template is YAML.
        merge_template = Path(tmp) / "merge-template.json"
        merge_template.write_text(json.dumps(load_template()), encoding="utf-8")
        _chalice_package(project_dir, stage, out, merge_template, policy_file)
    template = out / "sam.json"
    sam = json.loads(template.read_text(encoding="utf-8"))
    template.write_text(json.dumps(patch_template(sam), indent=2) + "\n", encoding="utf-8")
    return template


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--out", default="build/package", help="output folder (relative to the project)")
    parser.add_argument("--region", default="us-east-1", help="used only when no AWS region is configured")
    args = parser.parse_args(argv)
    try:
        template = package(args.stage, args.out, region=args.region)
    except PackageError as exc:
        print(f"package failed: {exc}", file=sys.stderr)
        return 1
    print(template)
    return 0


if __name__ == "__main__":
    sys.exit(main())
