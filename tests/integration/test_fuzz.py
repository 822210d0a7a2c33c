"""schemathesis against the whole local stack, bounded: every check, every phase, zero failures.

The bounded cousin of ``make fuzz``: a fixed seed, a few examples per operation and phase, and a
time budget that schemathesis spends as it sees fit (fuzzing and stateful runs repeat until it is
spent, then it stops cleanly and reports). What is asserted is the outcome, never how far a loaded
machine got: no check failed, nothing errored, every operation was tested.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.api.openapi import OPERATIONS
from devstack.fuzz import PHASES, run_schemathesis
from devstack.stack import DevStack

from .conftest import KEY_A, KEY_B

SEED = 20261125
MAX_EXAMPLES = 5  # per operation and phase
BUDGET_SECONDS = 40  # the whole run's; `make fuzz` goes further
# Checks that judge every response; the others (links, auth, peers) apply only where they can.
EVERYWHERE = {"not_a_server_error", "status_code_conformance", "content_type_conformance",
              "response_schema_conformance", "negative_data_rejection", "positive_data_acceptance",
              "unsupported_method", "ignored_auth", "object_level_authorization", "use_after_free",
              "ensure_resource_availability", "missing_required_header", "allow_header_conformance"}


@pytest.mark.timeout(600)  # a backstop for a hung run only: the budget is schemathesis's own
def test_schemathesis_finds_no_failure(stack: DevStack, tmp_path: Path) -> None:
    result = run_schemathesis(
        stack.urls["rest"], (KEY_A, KEY_B),
        ["--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--max-time", str(BUDGET_SECONDS), "--no-color"],
        reports=tmp_path, capture=True, timeout=540,
    )
    output = (result.output or "")[-8000:]
    report = result.report
    assert report, output
    assert report["failures"] == [] and report["errors"] == [], output
    assert result.returncode == 0, output
    assert report["operations"]["tested"] == report["operations"]["selected"] == len(OPERATIONS), output
    assert set(report["phases"]) == set(PHASES.split(","))
    assert all(phase["status"] in ("success", "skip") for phase in report["phases"].values()), report["phases"]
    assert report["test_cases"]["generated"] > 0 and report["test_cases"]["with_failures"] == 0
    assert set(result.checks) >= EVERYWHERE, sorted(result.checks)
    failed = {name: counts for name, counts in result.checks.items() if counts.get("failure", 0)}
    assert failed == {}, output
