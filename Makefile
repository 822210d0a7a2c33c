# Two commands matter: `make run` (the whole local stack) and `make test` (every test tier).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck check bench docs test-postman fuzz screenshots package localstack test-localstack clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required (set PYTHON=...)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/order-engine run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -W error tests

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run

# The Postman collection run by newman (pinned, through npx) against a local stack the test starts.
test-postman: $(STAMP)
	$(BIN)/python -m pytest -W error tests/integration/test_postman.py

# schemathesis against a local stack it starts (or the one at FUZZ_URL, keys in FUZZ_API_KEYS): every
# check, every phase, the summary and each check's count; non-zero on any failure. FUZZ_ARGS go to
# `schemathesis run` (e.g. FUZZ_ARGS='--max-examples 400 --seed 7'); reports in build/fuzz.
fuzz: $(STAMP)
	$(BIN)/python -m devstack.fuzz $(FUZZ_ARGS)

# The contract documents under docs/ (OpenAPI, AsyncAPI, Postman), written from the code.
docs: $(STAMP)
	$(BIN)/python -m devstack.contract_docs

# The dashboard's pictures in docs/screenshots, taken by the browser tier (needs Chromium).
screenshots: $(STAMP)
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest -W error tests/browser -q

include infra/infra.mk

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
