"""Create the queues and tables of ``infra/template.yaml`` on AWS, moto or LocalStack.

The template is the single definition. It is deployed as a CloudFormation stack; where the
endpoint has no CloudFormation, the same resources are created directly from the template's
properties. Time to live is then enabled for every table whose template asks for it, because
moto's CloudFormation ignores ``TimeToLiveSpecification``, and so is the stream of a table that
exists without one, and every global secondary index a table lacks (created by an earlier version
of the template). An endpoint that lacks a service
(LocalStack's free build here has no DynamoDB) gets what it can serve and a clear error.

    python -m infra.provision --endpoint-url http://127.0.0.1:4566 --region us-east-1
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

__all__ = [
    "DEFAULT_STACK_NAME",
    "QUEUE_TYPE",
    "TABLE_TYPE",
    "TEMPLATE_PATH",
    "ProvisionError",
    "load_template",
    "main",
    "provision",
    "reachable",
    "template_body",
    "template_resources",
]

TEMPLATE_PATH = Path(__file__).with_name("template.yaml")
DEFAULT_STACK_NAME = "order-engine-resources"

QUEUE_TYPE = "AWS::SQS::Queue"
TABLE_TYPE = "AWS::DynamoDB::Table"

_STACK_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
_STACK_FAILED = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"}
# The service behind each resource type, and a cheap call that shows whether an endpoint serves it.
_SERVICES = {QUEUE_TYPE: "sqs", TABLE_TYPE: "dynamodb"}
_PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "sqs": ("list_queues", {"MaxResults": 1}),
    "dynamodb": ("list_tables", {"Limit": 1}),
}
_PROBE_CONFIG = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 1, "mode": "standard"})
# CloudFormation queue properties → SQS attribute names (RedrivePolicy and the like are JSON).
_QUEUE_ATTRIBUTES = {
    "DelaySeconds": "DelaySeconds",
    "MaximumMessageSize": "MaximumMessageSize",
    "MessageRetentionPeriod": "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout": "VisibilityTimeout",
    "RedrivePolicy": "RedrivePolicy",
    "RedriveAllowPolicy": "RedriveAllowPolicy",
    "FifoQueue": "FifoQueue",
    "ContentBasedDeduplication": "ContentBasedDeduplication",
    "SqsManagedSseEnabled": "SqsManagedSseEnabled",
}
# CloudFormation table properties passed to CreateTable unchanged.
_TABLE_PARAMETERS = (
    "TableName", "AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes", "ProvisionedThroughput", "TableClass", "DeletionProtectionEnabled",
)
# Applied by provision() after the table exists, not by CreateTable.
_TABLE_AFTER_CREATE = ("TimeToLiveSpecification",)
# CloudFormation names only the view type; CreateTable and UpdateTable also want it enabled.
_TABLE_STREAM = "StreamSpecification"


class ProvisionError(RuntimeError):
    """The resources could not be created; the message says which and why."""


class _CloudFormationUnavailableError(Exception):
    """The endpoint answers, but not as CloudFormation."""


def template_body() -> str:
    """The template's text, as sent to CloudFormation."""
    return TEMPLATE_PATH.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _parsed_template() -> dict[str, Any]:
    parsed = yaml.safe_load(template_body())
    if not isinstance(parsed, dict) or not isinstance(parsed.get("Resources"), dict):
        raise ProvisionError(f"{TEMPLATE_PATH} has no Resources mapping")
    return parsed


def load_template() -> dict[str, Any]:
    """The parsed template (a fresh copy: callers may change it)."""
    copy: dict[str, Any] = json.loads(json.dumps(_parsed_template()))
    return copy


def template_resources() -> dict[str, dict[str, Any]]:
    """The template's resources by logical id."""
    resources: dict[str, dict[str, Any]] = load_template()["Resources"]
    return resources


def reachable(endpoint_url: str, timeout: float = 1.0) -> bool:
    """Whether anything accepts a TCP connection at the endpoint's host and port."""
    url = urlparse(endpoint_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _session(endpoint_url: str | None, region: str) -> boto3.session.Session:
    session = boto3.session.Session(region_name=region)
    if endpoint_url and session.get_credentials() is None:
        # Emulators accept any credentials; "test" is their convention.
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    return session


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _of_type(resources: Mapping[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r.get("Type") == kind}


# ---------------------------------------------------------------- CloudFormation


def _not_served(exc: ClientError) -> bool:
    """Whether an error says the endpoint does not serve the API at all (rather than refusing a request)."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status >= 500 or status == 404 or _error_code(exc) in (
        "InternalError", "InternalFailure", "NotImplemented", "ServiceUnavailable", "UnknownOperationException",
    )


def _stack_status(cfn: Any, stack_name: str) -> str | None:
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if _error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        if _not_served(exc):
            raise _CloudFormationUnavailableError(str(exc)) from exc
        raise ProvisionError(f"cannot read stack {stack_name}: {exc}") from exc
    except BotoCoreError as exc:
        raise _CloudFormationUnavailableError(str(exc)) from exc
    return str(stacks[0]["StackStatus"]) if stacks else None


def _failure_reasons(cfn: Any, stack_name: str) -> str:
    try:
        events = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except ClientError:
        return "no stack events"
    reasons = [
        f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("FAILED") and e.get("ResourceStatusReason")
    ]
    return "; ".join(reasons) or "no reason given"


def _wait(cfn: Any, waiter_name: str, stack_name: str) -> None:
    waiter = cfn.get_waiter(waiter_name)
    waiter.wait(StackName=stack_name, WaiterConfig={"Delay": 1, "MaxAttempts": 600})


def _deploy_stack(cfn: Any, stack_name: str) -> None:
    """Create the stack unless it is already complete; raises ProvisionError when creation fails."""
    status = _stack_status(cfn, stack_name)
    if status is not None and status.endswith("_IN_PROGRESS"):
        waiter = {"DELETE": "stack_delete_complete", "UPDATE": "stack_update_complete"}.get(
            status.split("_", 1)[0], "stack_create_complete")
        try:
            _wait(cfn, waiter, stack_name)
        except WaiterError:
            pass
        status = _stack_status(cfn, stack_name)
    if status in _STACK_DONE:
        return
    if status in _STACK_FAILED:
        # A failed first creation leaves a stack that can only be deleted.
        cfn.delete_stack(StackName=stack_name)
        _wait(cfn, "stack_delete_complete", stack_name)
    try:
        stack_id = cfn.create_stack(StackName=stack_name, TemplateBody=template_body(), OnFailure="DELETE")["StackId"]
    except ClientError as exc:
        if _error_code(exc) == "AlreadyExistsException":
            _wait(cfn, "stack_create_complete", stack_name)
            return
        if _not_served(exc):
            raise _CloudFormationUnavailableError(str(exc)) from exc
        raise ProvisionError(f"stack {stack_name} was refused: {exc}") from exc
    try:
        _wait(cfn, "stack_create_complete", stack_id)
    except WaiterError as exc:
        raise ProvisionError(f"stack {stack_name} was not created: {_failure_reasons(cfn, stack_id)}") from exc


# ---------------------------------------------------------------- direct API


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            yield target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _creation_order(resources: Mapping[str, dict[str, Any]]) -> list[str]:
    """Logical ids, each after the resources it refers to."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name not in resources:
            return
        if name in visiting:
            raise ProvisionError(f"circular reference at {name}")
        visiting.add(name)
        for ref in _references(resources[name].get("Properties", {})):
            visit(ref)
        visiting.discard(name)
        order.append(name)

    for name in resources:
        visit(name)
    return order


def _resolve(value: Any, attributes: Mapping[str, Mapping[str, str]]) -> Any:
    """Replace Ref / Fn::GetAtt with the values of resources created before."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return attributes[value["Ref"]]["Ref"]
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            name, attr = target if isinstance(target, list) else str(target).split(".", 1)
            return attributes[name][attr]
        return {k: _resolve(v, attributes) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, attributes) for v in value]
    return value


def _queue_attributes(props: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(props) - set(_QUEUE_ATTRIBUTES) - {"QueueName", "Tags"}
    if unknown:
        raise ProvisionError(f"queue properties not supported without CloudFormation: {sorted(unknown)}")
    attrs: dict[str, str] = {}
    for prop, attr in _QUEUE_ATTRIBUTES.items():
        if prop not in props:
            continue
        value = props[prop]
        if isinstance(value, dict):
            attrs[attr] = json.dumps(value)
        elif isinstance(value, bool):
            attrs[attr] = "true" if value else "false"
        else:
            attrs[attr] = str(value)
    return attrs


def _create_queue(sqs: Any, props: Mapping[str, Any]) -> dict[str, str]:
    name = props["QueueName"]
    attrs = _queue_attributes(props)
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    except ClientError as exc:
        if _error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
        # It exists with other attributes: bring it in line with the template.
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes={k: v for k, v in attrs.items() if k != "FifoQueue"})
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}


def _table_parameters(props: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(props) - set(_TABLE_PARAMETERS) - set(_TABLE_AFTER_CREATE) - {_TABLE_STREAM, "Tags"}
    if unknown:
        raise ProvisionError(f"table properties not supported without CloudFormation: {sorted(unknown)}")
    params = {k: props[k] for k in _TABLE_PARAMETERS if k in props}
    if props.get("Tags"):
        params["Tags"] = props["Tags"]
    if _TABLE_STREAM in props:
        params[_TABLE_STREAM] = _stream_parameters(props[_TABLE_STREAM])
    return params


def _stream_parameters(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"StreamEnabled": True, "StreamViewType": spec["StreamViewType"]}


def _create_table(dynamodb: Any, props: Mapping[str, Any]) -> dict[str, str]:
    name = props["TableName"]
    try:
        dynamodb.create_table(**_table_parameters(props))
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
    return {"Ref": name, "Arn": arn}


def _create_directly(session: boto3.session.Session, endpoint_url: str | None,
                     resources: Mapping[str, dict[str, Any]]) -> None:
    """Create each resource through its service's API; what can be created is, then failures are raised."""
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    attributes: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    for name in _creation_order(resources):
        resource = resources[name]
        try:
            props = _resolve(resource.get("Properties", {}), attributes)
            if resource["Type"] == QUEUE_TYPE:
                attributes[name] = _create_queue(sqs, props)
            elif resource["Type"] == TABLE_TYPE:
                attributes[name] = _create_table(dynamodb, props)
            else:
                raise ProvisionError(f"{resource['Type']} cannot be created without CloudFormation")
        except KeyError as exc:
            failures.append(f"{name}: depends on {exc} which was not created")
        except (ClientError, WaiterError, ProvisionError) as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        created = ", ".join(attributes) or "nothing"
        raise ProvisionError(f"created {created}; not created: " + "; ".join(failures))


def _existing(session: boto3.session.Session, endpoint_url: str | None,
              resources: Mapping[str, dict[str, Any]]) -> list[str]:
    """Logical ids of the template's queues and tables that already exist under their names."""
    found: list[str] = []
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        try:
            if resource.get("Type") == QUEUE_TYPE:
                sqs.get_queue_url(QueueName=props["QueueName"])
            elif resource.get("Type") == TABLE_TYPE:
                dynamodb.describe_table(TableName=props["TableName"])
            else:
                continue
        except ClientError:
            continue
        found.append(name)
    return found


# ---------------------------------------------------------------- after creation


def _enable_time_to_live(dynamodb: Any, tables: Mapping[str, dict[str, Any]]) -> None:
    for resource in tables.values():
        props = resource.get("Properties", {})
        spec = props.get("TimeToLiveSpecification")
        if not spec or not spec.get("Enabled"):
            continue
        name = props["TableName"]
        current = dynamodb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
        if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            continue
        try:
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": spec["AttributeName"], "Enabled": True},
            )
        except ClientError as exc:
            if not (_error_code(exc) == "ValidationException" and "already enabled" in str(exc)):
                raise


def _enable_streams(dynamodb: Any, tables: Mapping[str, dict[str, Any]]) -> None:
    """Give a table that exists without its stream the one the template asks for."""
    for resource in tables.values():
        props = resource.get("Properties", {})
        if _TABLE_STREAM not in props:
            continue
        name = props["TableName"]
        wanted = _stream_parameters(props[_TABLE_STREAM])
        current = dynamodb.describe_table(TableName=name)["Table"].get(_TABLE_STREAM) or {}
        if current.get("StreamEnabled"):
            if current.get("StreamViewType") != wanted["StreamViewType"]:
                raise ProvisionError(f"table {name} has a {current.get('StreamViewType')} stream; the template "
                                     f"asks for {wanted['StreamViewType']} (disable the stream to let it change)")
            continue
        dynamodb.update_table(TableName=name, StreamSpecification=wanted)


def _add_missing_indexes(dynamodb: Any, tables: Mapping[str, dict[str, Any]]) -> None:
    """Give a table that exists without one of the template's global secondary indexes that index
    (one per UpdateTable, as DynamoDB allows), and wait until it is active."""
    for resource in tables.values():
        props = resource.get("Properties", {})
        name = props["TableName"]
        wanted = props.get("GlobalSecondaryIndexes") or []
        for index in wanted:
            table = dynamodb.describe_table(TableName=name)["Table"]
            if index["IndexName"] in {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}:
                continue
            keys = {k["AttributeName"] for k in index["KeySchema"]}
            create: dict[str, Any] = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            if props.get("BillingMode") != "PAY_PER_REQUEST" and "ProvisionedThroughput" in index:
                create["ProvisionedThroughput"] = index["ProvisionedThroughput"]
            dynamodb.update_table(
                TableName=name,
                AttributeDefinitions=[a for a in props["AttributeDefinitions"] if a["AttributeName"] in keys],
                GlobalSecondaryIndexUpdates=[{"Create": create}],
            )
            _wait_for_index(dynamodb, name, index["IndexName"])


def _wait_for_index(dynamodb: Any, table: str, index: str, attempts: int = 600) -> None:
    for _ in range(attempts):
        found = [i for i in dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
                 if i["IndexName"] == index]
        if found and found[0].get("IndexStatus", "ACTIVE") == "ACTIVE":
            return
        time.sleep(1)
    raise ProvisionError(f"index {index} of table {table} did not become active")


def _describe(session: boto3.session.Session, endpoint_url: str | None,
              resources: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Names, URLs and ARNs, keyed like the template's Outputs."""
    result: dict[str, str] = {}
    queues = _of_type(resources, QUEUE_TYPE)
    if queues:
        sqs = session.client("sqs", endpoint_url=endpoint_url)
        for name, resource in queues.items():
            url = sqs.get_queue_url(QueueName=resource["Properties"]["QueueName"])["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            result[f"{name}Url"] = url
            result[f"{name}Arn"] = attrs["QueueArn"]
    tables = _of_type(resources, TABLE_TYPE)
    if tables:
        dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        for name, resource in tables.items():
            table = dynamodb.describe_table(TableName=resource["Properties"]["TableName"])["Table"]
            result[f"{name}Name"] = table["TableName"]
            result[f"{name}Arn"] = table["TableArn"]
            if _TABLE_STREAM in resource["Properties"]:
                result[f"{name}StreamArn"] = table["LatestStreamArn"]
    return result


def _unavailable_services(session: boto3.session.Session, endpoint_url: str | None,
                          resources: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Services the template needs that the endpoint does not serve, with the reason.

    An emulator may lack one (LocalStack's DynamoDB fetches DynamoDB Local at first use);
    asking once, without retries, fails in a moment where a stack would wait for minutes.
    """
    missing: dict[str, str] = {}
    for service in sorted({_SERVICES[r["Type"]] for r in resources.values() if r.get("Type") in _SERVICES}):
        operation, params = _PROBES[service]
        make_client: Any = session.client  # the service name is a variable here
        client = make_client(service, endpoint_url=endpoint_url, config=_PROBE_CONFIG)
        try:
            getattr(client, operation)(**params)
        except ClientError as exc:
            if _not_served(exc):
                missing[service] = str(exc)
        except BotoCoreError as exc:
            missing[service] = str(exc)
    return missing


def provision(endpoint_url: str | None, region: str = "us-east-1",
              stack_name: str = DEFAULT_STACK_NAME) -> dict[str, str]:
    """Create the template's resources (idempotent) and return their names, URLs and ARNs.

    ``endpoint_url`` None means the default AWS endpoints (or moto's ``mock_aws``). A complete
    stack is left as it is; resources that exist outside a stack (created by an earlier run
    without CloudFormation) are brought in line directly, since a stack could not adopt them.
    When the endpoint lacks a service, what it can serve is created and ProvisionError says
    what it cannot.
    """
    session = _session(endpoint_url, region)
    resources = template_resources()
    missing = _unavailable_services(session, endpoint_url, resources)
    if missing:
        served = {n: r for n, r in resources.items() if _SERVICES.get(r.get("Type", "")) not in missing}
        created = "nothing"
        if served:
            _create_directly(session, endpoint_url, served)
            created = ", ".join(served)
        reasons = "; ".join(f"{service}: {reason}" for service, reason in missing.items())
        raise ProvisionError(f"{endpoint_url or 'the AWS endpoint'} does not serve {', '.join(missing)}; "
                             f"created only: {created} ({reasons})")
    cfn = session.client("cloudformation", endpoint_url=endpoint_url)
    try:
        status = _stack_status(cfn, stack_name)
    except _CloudFormationUnavailableError:
        use_stack = False
    else:
        use_stack = status in _STACK_DONE or not _existing(session, endpoint_url, resources)
    if use_stack:
        try:
            _deploy_stack(cfn, stack_name)
        except _CloudFormationUnavailableError:
            use_stack = False
        except ProvisionError as stack_error:
            # e.g. an emulator whose CloudFormation cannot create one of the resource types.
            try:
                _create_directly(session, endpoint_url, resources)
            except ProvisionError as direct_error:
                raise ProvisionError(f"{stack_error}; then directly: {direct_error}") from direct_error
    if not use_stack:
        _create_directly(session, endpoint_url, resources)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    _enable_time_to_live(dynamodb, _of_type(resources, TABLE_TYPE))
    _enable_streams(dynamodb, _of_type(resources, TABLE_TYPE))
    _add_missing_indexes(dynamodb, _of_type(resources, TABLE_TYPE))
    return _describe(session, endpoint_url, resources)


def _localstack_endpoint() -> str:
    from localstack_client.config import get_service_endpoint

    endpoint = get_service_endpoint("sqs")
    if not endpoint:
        raise ProvisionError("localstack-client knows no endpoint")
    return str(endpoint)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.provision", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url", help="AWS-compatible endpoint (moto server, LocalStack); default: AWS")
    where.add_argument("--localstack", action="store_true",
                       help="the LocalStack endpoint from localstack-client (LOCALSTACK_HOST, AWS_ENDPOINT_URL)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stack-name", default=DEFAULT_STACK_NAME)
    parser.add_argument("--probe", action="store_true",
                        help="only check that the endpoint answers: exit 0 if it does, 3 if not")
    args = parser.parse_args(argv)
    endpoint: str | None = _localstack_endpoint() if args.localstack else args.endpoint_url
    if args.probe:
        if endpoint is None:
            parser.error("--probe needs --endpoint-url or --localstack")
        return 0 if reachable(endpoint) else 3
    try:
        result = provision(endpoint, args.region, args.stack_name)
    except (ProvisionError, ClientError) as exc:
        print(f"provision failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
