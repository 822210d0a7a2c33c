"""infra.package: the packaged SAM template is valid, least-privilege and wired to the infra resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file

from infra.package import (
    ENVIRONMENT,
    FUNCTION_CALLS,
    SERVICE_SIDS,
    STREAM_EVENT_SOURCE,
    PackageError,
    function_name,
    patch_template,
)
from infra.provision import load_template, template_resources

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m infra.package`` once, in its own process (Chalice sets the stage's environment)."""
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    done = subprocess.run([sys.executable, "-m", "infra.package", "--stage", "dev", "--out", str(out)],
                          cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out / "sam.json")  # after Chalice's progress lines
    return out


@pytest.fixture(scope="module")
def sam(packaged: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads((packaged / "sam.json").read_text(encoding="utf-8"))
    return template


def _functions(sam: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def _sqs_events(sam: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, function in _functions(sam).items():
        for event in (function["Properties"].get("Events") or {}).values():
            if event["Type"] == "SQS":
                yield name, event["Properties"]


def _stream_events(sam: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, function in _functions(sam).items():
        for event in (function["Properties"].get("Events") or {}).values():
            if event["Type"] == "DynamoDB":
                yield name, event["Properties"]


def _unwrap(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement that exists only under a condition (``Fn::If [cond, statement, NoValue]``), as given."""
    if "Fn::If" in statement:
        _, given, otherwise = statement["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        return dict(given)
    return statement


def _role_statements(sam: dict[str, Any], function: str) -> list[dict[str, Any]]:
    role = sam["Resources"][sam["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]]
    return [_unwrap(s) for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _by_name(sam: dict[str, Any]) -> dict[str, str]:
    """Chalice's function name (api_handler, process_orders, …) → logical id."""
    return {function_name(n, f): n for n, f in _functions(sam).items()}


def _handler(sam: dict[str, Any], function: str) -> str:
    return str(sam["Resources"][function]["Properties"]["Handler"]).rsplit(".", 1)[-1]


def _statements(sam: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                yield from map(_unwrap, policy["PolicyDocument"]["Statement"])
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield from map(_unwrap, resource["Properties"]["PolicyDocument"]["Statement"])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    matches = lint_file(packaged / "sam.json")
    assert matches == [], "\n".join(str(m) for m in matches)


def test_infra_resources_are_merged_unchanged(sam: dict[str, Any]) -> None:
    for name, resource in template_resources().items():
        assert sam["Resources"][name] == resource
    for name, output in load_template()["Outputs"].items():
        assert sam["Outputs"][name] == output


def test_every_sqs_event_reports_partial_batch_failures(sam: dict[str, Any]) -> None:
    events = list(_sqs_events(sam))
    assert len(events) == 3  # the orders worker, the dead-letter handler and the matcher
    for _, props in events:
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_sqs_events_name_queues_of_the_template(sam: dict[str, Any]) -> None:
    names = {r["Properties"]["QueueName"] for r in template_resources().values() if r["Type"] == "AWS::SQS::Queue"}
    read = {props["Queue"]["Fn::Sub"].rsplit(":", 1)[-1] for _, props in _sqs_events(sam)}
    assert read <= names
    # the failures queue is only written to
    assert read == {"order-engine-orders", "order-engine-orders-dlq", "order-engine-market-events"}


def test_the_matcher_reads_market_events_in_batches_two_at_a_time(sam: dict[str, Any]) -> None:
    (matcher,) = [f for f in _functions(sam).values()
                  if f["Properties"]["Handler"].endswith(".match_market_events")]
    (event,) = [e["Properties"] for e in matcher["Properties"]["Events"].values()]
    assert event["BatchSize"] == 10 and event["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert event["Queue"]["Fn::Sub"].endswith(":order-engine-market-events")


def test_the_tick_and_the_sweep_run_every_minute(sam: dict[str, Any]) -> None:
    schedules = {_handler(sam, name): event["Properties"]["Schedule"] for name, f in _functions(sam).items()
                 for event in (f["Properties"].get("Events") or {}).values() if event["Type"] == "Schedule"}
    assert schedules == {"market_tick": "rate(1 minute)", "expiry_sweep": "rate(1 minute)"}


def test_the_functions_that_read_the_market_publish_market_events(sam: dict[str, Any]) -> None:
    # Reading the simulated market applies the ticks and landings due, which go out as market
    # events where orders wait: every function that quotes, executes, asks the chain or ticks.
    publishers = set()
    for name, logical_id in _by_name(sam).items():
        publish = [s for s in _role_statements(sam, logical_id) if s.get("Sid") == "MarketEventsQueue"]
        if publish:
            (statement,) = publish
            assert statement["Resource"] == [{"Fn::GetAtt": ["MarketEventsQueue", "Arn"]}], name
            assert statement["Action"] == ["sqs:GetQueueUrl", "sqs:SendMessage"], name
            publishers.add(name)
    assert publishers == {"api_handler", "process_orders", "process_dead_letters", "match_market_events",
                          "market_tick"}


def test_every_policy_is_the_table_of_its_functions_calls_and_what_lambda_needs(sam: dict[str, Any]) -> None:
    by_name = _by_name(sam)
    assert set(by_name) == set(FUNCTION_CALLS)
    for name, logical_id in by_name.items():
        statements = _role_statements(sam, logical_id)
        code = {s["Sid"]: s["Action"] for s in statements if s["Sid"] not in SERVICE_SIDS}
        assert code == {resource: list(actions) for resource, actions in FUNCTION_CALLS[name].items()}, name
        assert all(s["Effect"] == "Allow" for s in statements)
        assert len({s["Sid"] for s in statements}) == len(statements), name  # one statement per resource


def test_a_function_the_table_does_not_list_is_refused() -> None:
    sam: dict[str, Any] = {"Resources": {
        **template_resources(),
        "NewRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": []}},
        "New": {"Type": "AWS::Serverless::Function", "Properties": {
            "Role": {"Fn::GetAtt": ["NewRole", "Arn"]}, "Handler": "chalicelib.api.markets.snipe"}},
    }}
    with pytest.raises(PackageError, match="snipe has no entry in FUNCTION_CALLS"):
        patch_template(sam)


def test_a_resource_the_template_lacks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import package

    monkeypatch.setitem(package.RESOURCES, "OrdersWaiting", ("index", "OrdersTable/sleeping"))
    with pytest.raises(PackageError, match="no index sleeping"):
        package.build_policy("expiry_sweep", "dev")


def test_the_fan_out_reads_the_orders_tables_real_stream_with_partial_failures_and_bisect(
        sam: dict[str, Any]) -> None:
    ((name, props),) = list(_stream_events(sam))
    assert _handler(sam, name) == "fan_out_order_events"
    # the app registers a placeholder that names the table; the package wires the table's stream
    assert props["Stream"] == {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == STREAM_EVENT_SOURCE["MaximumRetryAttempts"] >= 1
    assert props["StartingPosition"] == "LATEST" and props["BatchSize"] == 100
    # what runs out of retries is described on a queue, never dropped silently
    assert props["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": ["FanoutFailuresQueue", "Arn"]}}}
    variables = sam["Resources"][name]["Properties"]["Environment"]["Variables"]
    assert variables["ORDERS_TABLE_STREAM_ARN"] == {"Fn::GetAtt": ["OrdersTable", "StreamArn"]}


def test_only_the_fan_out_reads_the_stream_and_reports_to_the_failures_queue(sam: dict[str, Any]) -> None:
    for name in _functions(sam):
        statements = _role_statements(sam, name)
        stream = [s for s in statements if "dynamodb:GetRecords" in s["Action"]]
        report = [s for s in statements if s["Resource"] == [{"Fn::GetAtt": ["FanoutFailuresQueue", "Arn"]}]]
        if _handler(sam, name) != "fan_out_order_events":
            assert stream == [] and report == [], name
            continue
        (read,) = stream
        assert sorted(read["Action"]) == ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                          "dynamodb:GetShardIterator", "dynamodb:ListStreams"]
        assert read["Resource"] == [{"Fn::GetAtt": ["OrdersTable", "StreamArn"]}]  # that stream, nothing else
        (send,) = report
        assert send["Action"] == ["sqs:SendMessage"]


def test_a_stream_of_a_table_the_template_does_not_stream_is_refused() -> None:
    sam: dict[str, Any] = {"Resources": {
        **template_resources(),
        "FanRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": []}},
        "Fan": {"Type": "AWS::Serverless::Function", "Properties": {
            "Role": {"Fn::GetAtt": ["FanRole", "Arn"]}, "Handler": "app.fan",
            "Events": {"Source": {"Type": "DynamoDB", "Properties": {
                "Stream": "arn:aws:dynamodb:us-east-1:000000000000:table/order-engine-connections/stream/local",
            }}},
        }},
    }}
    with pytest.raises(PackageError, match="order-engine-connections"):
        patch_template(sam)


def test_orders_worker_runs_batches_of_ten_at_most_ten_at_a_time(sam: dict[str, Any]) -> None:
    (worker,) = [f for f in _functions(sam).values() if f["Properties"]["Handler"].endswith(".process_orders")]
    assert worker["Properties"]["Timeout"] == 60
    (event,) = [e["Properties"] for e in worker["Properties"]["Events"].values()]
    assert event["BatchSize"] == 10
    assert event["ScalingConfig"] == {"MaximumConcurrency": 10}
    assert event["Queue"]["Fn::Sub"].endswith(":order-engine-orders")


def test_no_dynamodb_or_sqs_permission_on_every_resource(sam: dict[str, Any]) -> None:
    checked = 0
    for statement in _statements(sam):
        actions = _as_list(statement["Action"])
        assert all(not a.endswith("*") for a in actions), statement  # actions by name, never by pattern
        if not any(a.startswith(("dynamodb:", "sqs:")) for a in actions):
            continue
        checked += 1
        for resource in _as_list(statement["Resource"]):
            assert resource != "*", statement
            assert isinstance(resource, dict), statement  # a reference to a resource of this template
    assert checked >= len(_functions(sam))


def test_only_intake_may_withdraw_an_order_it_could_not_queue(sam: dict[str, Any]) -> None:
    deleting = set()
    for name, logical_id in _by_name(sam).items():
        for statement in _role_statements(sam, logical_id):
            if "dynamodb:DeleteItem" in statement["Action"] and statement["Sid"] == "OrdersTable":
                assert statement["Resource"] == [{"Fn::GetAtt": ["OrdersTable", "Arn"]}]  # not its indexes
                deleting.add(name)
    assert deleting == {"api_handler", "ws_message"}  # OrdersTable.delete_unstarted, REST and WebSocket


def test_each_function_consumes_only_its_own_queue(sam: dict[str, Any]) -> None:
    resources = sam["Resources"]
    for name, function in _functions(sam).items():
        consume = [s for s in _role_statements(sam, name) if "sqs:ReceiveMessage" in s["Action"]]
        events = (function["Properties"].get("Events") or {}).values()
        queues = [e["Properties"]["Queue"]["Fn::Sub"].rsplit(":", 1)[-1] for e in events if e["Type"] == "SQS"]
        if not queues:
            assert consume == [], name
            continue
        by_name = {resources[q]["Properties"]["QueueName"]: q
                   for q in ("OrdersQueue", "OrdersDeadLetterQueue", "MarketEventsQueue")}
        (statement,) = consume
        assert statement["Resource"] == [{"Fn::GetAtt": [by_name[q], "Arn"]} for q in queues]


def test_websocket_calls_are_scoped_to_the_apis_connections_by_method(sam: dict[str, Any]) -> None:
    manage = [s for s in _statements(sam) if "execute-api:ManageConnections" in _as_list(s["Action"])]
    assert manage
    for statement in manage:
        (resource,) = statement["Resource"]
        method = {"PushToConnections": "POST", "AskConnections": "GET"}[statement["Sid"]]
        assert resource["Fn::Sub"].endswith(f":${{WebsocketAPI}}/dev/{method}/@connections/*")


def test_only_the_functions_that_push_may_push(sam: dict[str, Any]) -> None:
    def calling(sid: str) -> set[str]:
        return {name for name, logical_id in _by_name(sam).items()
                if any(s["Sid"] == sid for s in _role_statements(sam, logical_id))}

    # $default replies and sends snapshots; the worker sends the snapshot of a ?orderId= subscription;
    # the fan-out pushes the stream's events. REST, $connect, $disconnect and the DLQ handler never push.
    assert calling("PushToConnections") == {"ws_message", "process_orders", "fan_out_order_events"}
    assert calling("AskConnections") == {"process_orders"}  # is the ?orderId= socket open yet?


def test_the_api_keys_parameter_is_read_only_where_keys_are_checked_and_only_when_given(
        sam: dict[str, Any]) -> None:
    assert sam["Parameters"]["ApiKeysParameter"]["Default"] == ""
    assert sam["Conditions"]["ApiKeysFromParameter"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ApiKeysParameter"}, ""]}]}
    readers = set()
    for name, logical_id in _by_name(sam).items():
        role = sam["Resources"][sam["Resources"][logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]]
        for statement in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            if "Fn::If" not in statement:
                assert not any(a.startswith(("ssm:", "kms:")) for a in statement["Action"]), name
                continue
            condition, given, _ = statement["Fn::If"]
            if given["Sid"] == "ApiKeysParameter":
                assert condition == "ApiKeysFromParameter"
                assert given["Action"] == ["ssm:GetParameter"]
                assert given["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:"
                                                         "${AWS::AccountId}:parameter${ApiKeysParameter}"}]
                readers.add(name)
            else:  # a customer managed key: decrypting through SSM only
                assert condition == "ApiKeysParameterKeyGiven" and given["Action"] == ["kms:Decrypt"]
                assert given["Resource"] == [{"Ref": "ApiKeysParameterKey"}]
                assert given["Condition"] == {"StringEquals": {
                    "kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}}}
    assert readers == {"api_handler", "ws_connect"}  # the two that authenticate a key


def test_environment_is_wired_to_the_resources(sam: dict[str, Any]) -> None:
    for name, function in _functions(sam).items():
        variables = function["Properties"]["Environment"]["Variables"]
        for var, ref in ENVIRONMENT.items():
            assert variables[var] == ref, (name, var)
        assert variables["WS_API_ID"] == {"Ref": "WebsocketAPI"}, name
        assert variables["API_KEYS"] == {"Ref": "ApiKeys"}, name
        assert variables["API_KEYS_PARAMETER"] == {"Ref": "ApiKeysParameter"}, name
        assert variables["REDIS_URL"] == {"Ref": "RedisUrl"}, name
    assert sam["Parameters"]["ApiKeys"]["NoEcho"] is True


def test_deployment_package_holds_the_app(packaged: Path) -> None:
    with zipfile.ZipFile(packaged / "deployment.zip") as archive:
        names = set(archive.namelist())
    assert "app.py" in names
    assert "chalicelib/api/workers.py" in names
    # The dashboard deploys with the app: the page and every file it loads.
    assert {"chalicelib/web/index.html", "chalicelib/web/app.js", "chalicelib/web/style.css"} <= names


def test_an_event_source_queue_missing_from_the_template_is_refused() -> None:
    sam: dict[str, Any] = {"Resources": {
        **template_resources(),
        "WorkerRole": {"Type": "AWS::IAM::Role", "Properties": {"Policies": []}},
        "Worker": {"Type": "AWS::Serverless::Function", "Properties": {
            "Role": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
            "Events": {"Source": {"Type": "SQS", "Properties": {
                "Queue": {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:renamed-queue"},
            }}},
        }},
    }}
    with pytest.raises(PackageError, match="renamed-queue"):
        patch_template(sam)


def _rest_definition(sam: dict[str, Any]) -> dict[str, Any]:
    definition: dict[str, Any] = sam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    return definition


@pytest.mark.parametrize(("response_type", "status", "code"), [
    ("MISSING_AUTHENTICATION_TOKEN", "404", "not_found"),  # an unknown path: API Gateway's 403 by default
    ("UNSUPPORTED_MEDIA_TYPE", "415", "unsupported_media_type"),
    ("REQUEST_TOO_LARGE", "413", "payload_too_large"),
    ("DEFAULT_4XX", None, "bad_request"),
    ("DEFAULT_5XX", None, "internal_error"),
])
def test_what_api_gateway_answers_itself_is_in_the_contracts_error_shape(
        sam: dict[str, Any], response_type: str, status: str | None, code: str) -> None:
    response = _rest_definition(sam)["x-amazon-apigateway-gateway-responses"][response_type]
    assert response.get("statusCode") == status
    assert response["responseParameters"] == {"gatewayresponse.header.Content-Type": "'application/json'"}
    template = response["responseTemplates"]["application/json"]
    # API Gateway substitutes $context variables only; messageString arrives as a quoted JSON string.
    body = json.loads(template.replace("$context.error.messageString", json.dumps('a "quoted" message')))
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def test_every_path_answers_every_method_so_api_gateway_never_refuses_one_itself(sam: dict[str, Any]) -> None:
    paths = _rest_definition(sam)["paths"]
    assert paths
    for path, methods in paths.items():
        assert {"get", "head", "post", "put", "patch", "delete", "options"} <= set(methods), path


def test_a_rest_api_without_an_inline_definition_is_refused() -> None:
    sam: dict[str, Any] = {"Resources": {
        **template_resources(),
        "RestAPI": {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionUri": "s3://bucket/swagger.json"}},
    }}
    with pytest.raises(PackageError, match="RestAPI"):
        patch_template(sam)
