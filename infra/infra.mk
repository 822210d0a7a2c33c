# Packaging for AWS and provisioning on LocalStack. Included by the Makefile after it defines BIN and
# $(STAMP) (prerequisites are expanded when this file is read).

PACKAGE_STAGE       ?= dev
PACKAGE_OUT         ?= build/package
LOCALSTACK_REGION   ?= us-east-1
# Expanded by the shell, so LOCALSTACK_HOST (host:port, as localstack-client reads it) moves the default.
LOCALSTACK_ENDPOINT ?= http://$${LOCALSTACK_HOST:-127.0.0.1:4566}

.PHONY: package localstack test-localstack

# build/package/sam.json (Chalice's SAM template with infra/template.yaml merged and patched) + deployment.zip
package: $(STAMP)
	@$(BIN)/python -m infra.package --stage $(PACKAGE_STAGE) --out $(PACKAGE_OUT)

# Queues, DLQ and tables of infra/template.yaml on a running LocalStack; nothing to do when none answers.
localstack: $(STAMP)
	@endpoint="$(LOCALSTACK_ENDPOINT)"; \
	if $(BIN)/python -m infra.provision --endpoint-url "$$endpoint" --probe; then \
		echo "provisioning at $$endpoint"; \
		$(BIN)/python -m infra.provision --endpoint-url "$$endpoint" --region $(LOCALSTACK_REGION); \
	else \
		echo "LocalStack not reachable at $$endpoint; skipped"; \
	fi

# The LocalStack tier of the integration tests; without a LocalStack they report themselves skipped.
test-localstack: $(STAMP)
	@endpoint="$(LOCALSTACK_ENDPOINT)"; \
	$(BIN)/python -m infra.provision --endpoint-url "$$endpoint" --probe || \
		echo "LocalStack not reachable at $$endpoint; its tests are skipped"; \
	LOCALSTACK_ENDPOINT="$$endpoint" $(BIN)/python -m pytest -W error -m localstack tests/integration; \
	rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no test is marked localstack"; rc=0; fi; \
	exit $$rc
