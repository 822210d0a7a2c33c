# Two commands matter: `make run` (the whole local stack) and `make test` (every test tier).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run services test lint typecheck check bench docs test-postman fuzz screenshots package localstack test-localstack clean

# The first install (no stamp yet) shows each step and pip's own progress: it takes a minute or
# two. An update after pyproject.toml changed says so and lets pip be quiet. Once the stamp is
# there, nothing is printed at all. pip is the venv's own: chalice pins the pip it works with
# (an upgrade to the newest pip is refused by its requirement, with an ERROR line).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required (set PYTHON=...)"; exit 1; }
	@if test -f $(STAMP); then \
	  echo "order-engine: pyproject.toml changed, updating $(VENV)"; quiet=--quiet; \
	else \
	  echo "order-engine: first run, installing into $(VENV) (a minute or two; later runs skip this)"; quiet=; \
	fi; \
	if ! test -x $(BIN)/python; then \
	  echo "[1/2] creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV) || exit 1; \
	else echo "[1/2] $(VENV) exists"; fi; \
	echo "[2/2] installing order-engine and its dependencies (pip)"; \
	$(BIN)/python -m pip install $$quiet -e '.[dev]' || exit 1
	@touch $(STAMP)
	@echo "order-engine: $(VENV) is ready"

# FRESH=1 starts empty (forgets the state saved under .devstack/state).
run: $(STAMP)
	$(BIN)/order-engine run $(if $(filter-out 0,$(FRESH)),--fresh)

# Everything but the REST API, on fixed ports; then `chalice local --stage local` in another terminal.
services: $(STAMP)
	$(BIN)/order-engine services $(if $(filter-out 0,$(FRESH)),--fresh)

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
