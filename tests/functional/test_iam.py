"""Least privilege, proven by the code's own calls: the packaged policy of each Lambda function
allows every AWS call that function made across the functional tests, and grants nothing that
those calls did not use.

The calls are recorded by ``aws_calls.py`` while the rest of this tier runs; this module runs
last (``conftest.pytest_collection_modifyitems``). The app is packaged once, as ``make package``
does, and each policy is evaluated the way IAM would for the account, region and resources of
the functional tier: its intrinsics resolved (``Fn::GetAtt``, ``Fn::Sub``, ``Fn::If`` on the
stack's conditions), then each call's action and ARN matched against its Allow statements.

Left out of "nothing unused", because no code of ours makes those calls: what Lambda does with
the role (logs, reading the event source, the on-failure queue) and SSM's decryption with a
customer managed key (``infra.package.SERVICE_SIDS``); their contents are pinned here instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.package import (
    CONSUME_SID,
    DECRYPT_SID,
    LAMBDA_LOGS_SID,
    LOG_ACTIONS,
    ON_FAILURE_SID,
    QUEUE_CONSUME_ACTIONS,
    READ_STREAM_SID,
    SERVICE_SIDS,
    STREAM_READ_ACTIONS,
    function_name,
)

from .aws_calls import ACCOUNT, RECORDER, WS_API_ID, WS_STAGE, Call

PROJECT_DIR = Path(__file__).resolve().parents[2]
REPORT = PROJECT_DIR / "build" / "iam-call-coverage.md"
REGION = "us-east-1"
# The stack's parameters as a deployment that reads its keys from SSM with a key of its own gives them.
PARAMETERS = {"ApiKeys": "", "ApiKeysParameter": "/order-engine/api-keys", "RedisUrl": "rediss://redis:6379/0",
              "ApiKeysParameterKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a1b2c3d-0000-4000-8000-000000000000"}
SERVICE_ACTIONS = {LAMBDA_LOGS_SID: LOG_ACTIONS, CONSUME_SID: QUEUE_CONSUME_ACTIONS,
                   READ_STREAM_SID: STREAM_READ_ACTIONS, ON_FAILURE_SID: ["sqs:SendMessage"],
                   DECRYPT_SID: ["kms:Decrypt"]}


@pytest.fixture(scope="module")
def sam(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``python -m infra.package`` once (what ``make package`` runs), in its own process."""
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION}
    done = subprocess.run([sys.executable, "-m", "infra.package", "--stage", WS_STAGE, "--out", str(out)],
                          cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    template: dict[str, Any] = json.loads((out / "sam.json").read_text(encoding="utf-8"))
    return template


# -- the policies, as IAM evaluates them in the functional tier's account ---------------------------
@dataclass(frozen=True)
class Grant:
    """One action on one resource pattern, from the statement ``sid``."""

    sid: str
    action: str
    resource: str

    def allows(self, action: str, arn: str) -> bool:
        return self.action == action and _glob(self.resource).fullmatch(arn) is not None


def _glob(pattern: str) -> re.Pattern[str]:
    """IAM's resource wildcards: ``*`` any run of characters, ``?`` any one."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


class Stack:
    """The packaged template's intrinsics, resolved for one deployment (its parameter values)."""

    def __init__(self, sam: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.sam = sam
        self.parameters = dict(parameters)

    def policy(self, function: str) -> list[Grant]:
        resources = self.sam["Resources"]
        (logical_id,) = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
                         and function_name(n, r) == function]
        role = resources[resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]]
        grants = []
        for policy in role["Properties"]["Policies"]:
            for statement in self.resolve(policy["PolicyDocument"]["Statement"]):
                assert statement["Effect"] == "Allow", statement
                assert not {"NotAction", "NotResource"} & set(statement), statement
                grants += [Grant(statement["Sid"], action, resource)
                           for action in _as_list(statement["Action"]) for resource in _as_list(statement["Resource"])]
        return grants

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in map(self.resolve, value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self.ref(value["Ref"])
        if "Fn::GetAtt" in value:
            return self.get_att(*value["Fn::GetAtt"])
        if "Fn::Sub" in value:
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.ref(m.group(1)), value["Fn::Sub"])
        if "Fn::If" in value:
            condition, given, otherwise = value["Fn::If"]
            return self.resolve(given if self.condition(condition) else otherwise)
        return {k: self.resolve(v) for k, v in value.items()}

    def ref(self, name: str) -> Any:
        if "." in name:
            return self.get_att(*name.split(".", 1))
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                  "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": _NO_VALUE, "WebsocketAPI": WS_API_ID}
        if name in pseudo:
            return pseudo[name]
        return self.parameters[name]

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.sam["Resources"][logical_id]
        props = resource["Properties"]
        if resource["Type"] == "AWS::DynamoDB::Table":
            table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{props['TableName']}"
            return {"Arn": table, "StreamArn": f"{table}/stream/*"}[attribute]
        if resource["Type"] == "AWS::SQS::Queue" and attribute == "Arn":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{props['QueueName']}"
        raise AssertionError(f"cannot resolve Fn::GetAtt {logical_id}.{attribute}")

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self.sam["Conditions"][name]))

    def _evaluate(self, value: Any) -> Any:
        if isinstance(value, dict):
            ((fn, args),) = value.items()
            if fn == "Condition":
                return self.condition(args)
            if fn == "Fn::Not":
                return not self._evaluate(args[0])
            if fn == "Fn::And":
                return all(map(self._evaluate, args))
            if fn == "Fn::Or":
                return any(map(self._evaluate, args))
            if fn == "Fn::Equals":
                return self._evaluate(args[0]) == self._evaluate(args[1])
            return self.resolve(value)
        return value


_NO_VALUE = object()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _functions(sam: Mapping[str, Any]) -> set[str]:
    return {function_name(n, r) for n, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def _stack_for(sam: Mapping[str, Any], call: Call) -> Stack:
    """The stack a call ran under: a parameter the code read is the one the stack was given (the
    same value reaches the function's environment and its policy)."""
    parameter = re.fullmatch(rf"arn:aws:ssm:[^:]+:{ACCOUNT}:parameter(/.*)", call.resource)
    return Stack(sam, {**PARAMETERS, "ApiKeysParameter": parameter.group(1)} if parameter else PARAMETERS)


def _calls() -> dict[str, set[Call]]:
    by_function: dict[str, set[Call]] = {}
    for call in RECORDER.calls:
        by_function.setdefault(call.function, set()).add(call)
    return by_function


def _where(call: Call) -> str:
    return f"{call.function}: {call.action} on {call.resource} (first in {RECORDER.first_seen[call]})"


# -- the checks ------------------------------------------------------------------------------------
def test_calls_were_recorded_for_the_functions_of_the_package(sam: dict[str, Any]) -> None:
    if not RECORDER.calls:
        pytest.fail("no AWS call was recorded: this module checks the calls the rest of tests/functional "
                    "makes, so run it with them (pytest tests/functional)")
    assert set(_calls()) <= _functions(sam), "calls made by functions the package does not define"
    if RECORDER.partial is None:
        assert set(_calls()) == _functions(sam), "functions that made no AWS call in the functional tests"
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("# AWS calls by function in the functional tests\n\n" + RECORDER.table() + "\n",
                      encoding="utf-8")
    RECORDER.report = str(REPORT.relative_to(PROJECT_DIR))


def test_every_call_a_function_made_is_allowed_by_its_packaged_policy(sam: dict[str, Any]) -> None:
    denied = []
    for function, calls in sorted(_calls().items()):
        for call in sorted(calls):
            grants = _stack_for(sam, call).policy(function)
            if not any(g.allows(call.action, call.resource) for g in grants):
                denied.append(_where(call))
    assert RECORDER.calls
    assert denied == [], "calls the packaged policy does not allow (add them to infra.package.FUNCTION_CALLS):\n" \
                         + "\n".join(denied)


def test_every_action_a_policy_grants_was_called_by_its_function(sam: dict[str, Any]) -> None:
    assert RECORDER.calls, "no AWS call was recorded"
    if RECORDER.partial is not None:
        pytest.skip(f"only part of the functional tier ran ({RECORDER.partial}): an unused grant can "
                    "only be told from all of it")
    unused = []
    for function, calls in sorted(_calls().items()):
        grants = Stack(sam, PARAMETERS).policy(function)
        for index, grant in enumerate(grants):
            if grant.sid in SERVICE_SIDS:
                assert grant.action in SERVICE_ACTIONS[grant.sid], grant  # Lambda's and SSM's, nothing else
                continue
            # the same grant under the stack each call ran under (the keys' parameter it named)
            if not any(_stack_for(sam, c).policy(function)[index].allows(c.action, c.resource) for c in calls):
                unused.append(f"{function}: {grant.action} on {grant.resource} (statement {grant.sid})")
    assert unused == [], ("granted, and never called in the functional tests: remove it from "
                          "infra.package.FUNCTION_CALLS, or add the test of the path that calls it:\n"
                          + "\n".join(unused))
