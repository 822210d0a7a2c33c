"""Create the queues and tables of ``infra/template.yaml`` on AWS, moto or LocalStack.

The template is the single definition; this creates its resources through the SQS and DynamoDB
APIs, from the template's properties, with ``Ref`` and ``Fn::GetAtt`` resolved. One path for every
endpoint: on the local stack's emulator it takes about 0.4 s where a CloudFormation stack took
about 2 s (moto's CloudFormation alone takes a second to import), and it needs nothing but the two
services, which LocalStack's free build (SQS only, here) and any emulator serve. On AWS the same
resources come with the application's own stack (``make package``: the template is merged into
Chalice's). It is idempotent: what exists is brought in line (queue attributes, time to live, the
orders table's stream and its indexes: a table made by an earlier version of the template gets
the indexes it lacks), nothing is created twice. An endpoint that lacks a service (LocalStack's
free build here has no DynamoDB) gets what it can serve and a clear error.

    python -m infra.provision --endpoint-url http://127.0.0.1:4566 --region us-east-1
    python -m infra.provision --endpoint-url http://127.0.0.1:8002 --sqs-endpoint-url http://127.0.0.1:8003
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import yaml
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

__all__ = [
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

QUEUE_TYPE = "AWS::SQS::Queue"
TABLE_TYPE = "AWS::DynamoDB::Table"

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


def template_body() -> str:
    """The template's text."""
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


Endpoints = Mapping[str, str | None]  # boto3 service name -> endpoint URL; None: AWS


def _session(endpoints: Endpoints, region: str) -> boto3.session.Session:
    session = boto3.session.Session(region_name=region)
    if any(endpoints.values()) and session.get_credentials() is None:
        # Emulators accept any credentials; "test" is their convention.
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=region)
    return session


def _client(session: boto3.session.Session, endpoints: Endpoints, service: str, config: Config | None = None) -> Any:
    make: Any = session.client  # the service name is a variable here
    return make(service, endpoint_url=endpoints.get(service), config=config)


def _not_served(exc: ClientError) -> bool:
    """Whether an error says the endpoint does not serve the API at all (rather than refusing a request)."""
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return status >= 500 or status == 404 or _error_code(exc) in (
        "InternalError", "InternalFailure", "NotImplemented", "ServiceUnavailable", "UnknownOperationException",
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _of_type(resources: Mapping[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in resources.items() if r.get("Type") == kind}


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
        raise ProvisionError(f"queue properties this provisioning does not know: {sorted(unknown)}")
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
        raise ProvisionError(f"table properties this provisioning does not know: {sorted(unknown)}")
    params = {k: props[k] for k in _TABLE_PARAMETERS if k in props}
    if props.get("Tags"):
        params["Tags"] = props["Tags"]
    if _TABLE_STREAM in props:
        params[_TABLE_STREAM] = _stream_parameters(props[_TABLE_STREAM])
    return params


def _stream_parameters(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"StreamEnabled": True, "StreamViewType": spec["StreamViewType"]}


def _create_table(dynamodb: Any, props: Mapping[str, Any]) -> dict[str, str]:
    """The table's Ref and Arn, and ``Created`` when this call created it (with every parameter of
    the template's: its stream and indexes too)."""
    name = props["TableName"]
    created: dict[str, str] = {}
    try:
        table = dynamodb.create_table(**_table_parameters(props))["TableDescription"]
        created = {"Created": name}
        if table.get("TableStatus") == "ACTIVE":  # an emulator's table is ready at once: nothing to wait for
            return {"Ref": name, "Arn": table["TableArn"], **created}
    except ClientError as exc:
        if _error_code(exc) != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
    return {"Ref": name, "Arn": arn, **created}


def _create_directly(session: boto3.session.Session, endpoints: Endpoints,
                     resources: Mapping[str, dict[str, Any]], clients: dict[str, Any] | None = None) -> set[str]:
    """Create each resource through its service's API; what can be created is, then failures are raised.
    Returns the names of the tables this created (the others existed). ``clients``: one per service,
    made here when missing and kept there for what follows.

    The services' resources are created side by side (the local stack serves each service from a
    process of its own) unless one refers to another service's."""
    clients = {} if clients is None else clients
    attributes: dict[str, dict[str, str]] = {}
    failures: list[str] = []
    order = _creation_order(resources)
    by_service: dict[str, list[str]] = {}
    for name in order:
        by_service.setdefault(_SERVICES.get(resources[name].get("Type", ""), ""), []).append(name)

    def create(names: list[str]) -> None:
        for name in names:
            resource = resources[name]
            service = _SERVICES.get(resource.get("Type", ""))
            try:
                props = _resolve(resource.get("Properties", {}), attributes)
                if service is None:
                    raise ProvisionError(f"{resource['Type']} is not a resource this provisioning creates")
                client = clients.get(service) or clients.setdefault(service, _client(session, endpoints, service))
                created = _create_queue(client, props) if service == "sqs" else _create_table(client, props)
                attributes[name] = created
            except KeyError as exc:
                failures.append(f"{name}: depends on {exc} which was not created")
            except (ClientError, WaiterError, ProvisionError) as exc:
                failures.append(f"{name}: {exc}")

    crossing = any(_SERVICES.get(resources.get(ref, {}).get("Type", "")) != _SERVICES.get(r.get("Type", ""))
                   for r in resources.values() for ref in _references(r.get("Properties", {})) if ref in resources)
    if crossing or len(by_service) < 2:
        create(order)
    else:
        with ThreadPoolExecutor(max_workers=len(by_service)) as pool:
            list(pool.map(create, by_service.values()))
    if failures:
        created = ", ".join(n for n in order if n in attributes) or "nothing"
        raise ProvisionError(f"created {created}; not created: " + "; ".join(failures))
    return {a["Created"] for a in attributes.values() if "Created" in a}


# ---------------------------------------------------------------- after creation


def _enable_time_to_live(dynamodb: Any, tables: Mapping[str, dict[str, Any]], created: set[str]) -> None:
    """``created``: tables just created, whose time to live is off (CreateTable cannot set it)."""
    for resource in tables.values():
        props = resource.get("Properties", {})
        spec = props.get("TimeToLiveSpecification")
        if not spec or not spec.get("Enabled"):
            continue
        name = props["TableName"]
        if name not in created:
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


def _describe(session: boto3.session.Session, endpoints: Endpoints,
              resources: Mapping[str, dict[str, Any]], clients: dict[str, Any]) -> dict[str, str]:
    """Names, URLs and ARNs, keyed like the template's Outputs."""
    result: dict[str, str] = {}
    queues = _of_type(resources, QUEUE_TYPE)
    if queues:
        sqs = clients.get("sqs") or _client(session, endpoints, "sqs")
        for name, resource in queues.items():
            url = sqs.get_queue_url(QueueName=resource["Properties"]["QueueName"])["QueueUrl"]
            attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            result[f"{name}Url"] = url
            result[f"{name}Arn"] = attrs["QueueArn"]
    tables = _of_type(resources, TABLE_TYPE)
    if tables:
        dynamodb = clients.get("dynamodb") or _client(session, endpoints, "dynamodb")
        for name, resource in tables.items():
            table = dynamodb.describe_table(TableName=resource["Properties"]["TableName"])["Table"]
            result[f"{name}Name"] = table["TableName"]
            result[f"{name}Arn"] = table["TableArn"]
            if _TABLE_STREAM in resource["Properties"]:
                result[f"{name}StreamArn"] = table["LatestStreamArn"]
    return result


def _unavailable_services(session: boto3.session.Session, endpoints: Endpoints,
                          resources: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Services the template needs that the endpoint does not serve, with the reason.

    An emulator may lack one (LocalStack's DynamoDB fetches DynamoDB Local at first use);
    asking once, without retries, fails in a moment where creating would wait on retries.
    """
    missing: dict[str, str] = {}
    for service in sorted({_SERVICES[r["Type"]] for r in resources.values() if r.get("Type") in _SERVICES}):
        operation, params = _PROBES[service]
        client = _client(session, endpoints, service, _PROBE_CONFIG)
        try:
            getattr(client, operation)(**params)
        except ClientError as exc:
            if _not_served(exc):
                missing[service] = str(exc)
        except BotoCoreError as exc:
            missing[service] = str(exc)
    return missing


def provision(endpoint_url: str | None, region: str = "us-east-1", *,
              endpoints: Mapping[str, str] | None = None, check_services: bool = True,
              describe: bool = True) -> dict[str, str]:
    """Create the template's resources (idempotent) and return their names, URLs and ARNs.

    ``endpoint_url`` None means the default AWS endpoints (or moto's ``mock_aws``); ``endpoints``
    gives a service (``sqs``, ``dynamodb``) an endpoint of its own. Existing resources are brought
    in line, not created again. When the endpoint lacks a service, what it can serve is created and
    ProvisionError says what it cannot; ``check_services=False`` skips asking (an emulator known to
    serve both). ``describe=False`` returns nothing, sparing the calls that would describe them.
    """
    where: dict[str, str | None] = {service: endpoint_url for service in _PROBES}
    where.update(endpoints or {})
    session = _session(where, region)
    resources = template_resources()
    missing = _unavailable_services(session, where, resources) if check_services else {}
    if missing:
        served = {n: r for n, r in resources.items() if _SERVICES.get(r.get("Type", "")) not in missing}
        created = "nothing"
        if served:
            _create_directly(session, where, served)
            created = ", ".join(served)
        reasons = "; ".join(f"{service}: {reason}" for service, reason in missing.items())
        at = ", ".join(sorted({str(where[s] or "the AWS endpoint") for s in missing}))
        raise ProvisionError(f"{at} does not serve {', '.join(missing)}; created only: {created} ({reasons})")
    clients: dict[str, Any] = {}
    created = _create_directly(session, where, resources, clients)
    tables = _of_type(resources, TABLE_TYPE)
    if tables:
        dynamodb = clients.get("dynamodb") or _client(session, where, "dynamodb")
        _enable_time_to_live(dynamodb, tables, created)
        # A table created just now has the template's stream and indexes: only older ones may lack them.
        existing = {n: r for n, r in tables.items() if r.get("Properties", {}).get("TableName") not in created}
        _enable_streams(dynamodb, existing)
        _add_missing_indexes(dynamodb, existing)
    return _describe(session, where, resources, clients) if describe else {}


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
    parser.add_argument("--sqs-endpoint-url", help="SQS's own endpoint, when it is not --endpoint-url's")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--probe", action="store_true",
                        help="only check that the endpoint answers: exit 0 if it does, 3 if not")
    args = parser.parse_args(argv)
    endpoint: str | None = _localstack_endpoint() if args.localstack else args.endpoint_url
    if args.probe:
        if endpoint is None:
            parser.error("--probe needs --endpoint-url or --localstack")
        return 0 if reachable(endpoint) else 3
    try:
        result = provision(endpoint, args.region,
                           endpoints={"sqs": args.sqs_endpoint_url} if args.sqs_endpoint_url else None)
    except (ProvisionError, ClientError) as exc:
        print(f"provision failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
