"""The Postman collection, run by newman against the whole local stack (skipped without Node)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.contract_docs import DOCS
from devstack.stack import DevStack

from .conftest import KEY_A

NEWMAN = "newman@6.2.2"  # pinned: the collection format and the CLI's exit codes are tested against it
COLLECTION = DOCS / "postman" / "order-engine.postman_collection.json"
ENVIRONMENT = DOCS / "postman" / "local.postman_environment.json"


def test_every_request_of_the_collection_passes_against_the_stack(stack: DevStack, tmp_path: Path) -> None:
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("Node.js (npx) is not installed: the Postman collection was not run with newman")
    report = tmp_path / "newman.json"
    urls = stack.urls
    result = subprocess.run(
        [npx, "--yes", NEWMAN, "run", str(COLLECTION), "-e", str(ENVIRONMENT),
         "--env-var", f"baseUrl={urls['rest']}", "--env-var", f"wsUrl={urls['ws']}", "--env-var", f"apiKey={KEY_A}",
         "--reporters", "cli,json", "--reporter-json-export", str(report), "--color", "off",
         "--timeout-request", "30000"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    import json

    run = json.loads(report.read_text())["run"]
    assert run["stats"]["requests"]["total"] >= 5
    assert run["stats"]["assertions"]["failed"] == 0 and run["failures"] == []
