# hookd: the commands a developer needs. `make run` and `make test` set up everything else.
CARGO ?= cargo

.PHONY: run test bench fuzz chaos chaos-cluster schemathesis build lint fmt check-tools

## run: start a local Redis when none answers, then hookd with config/default.toml
run:
	./scripts/ensure-redis.sh
	$(CARGO) run --release -p hookd -- serve --config config/default.toml

## test: the whole suite (unit + end-to-end against real redis-server processes)
test: check-tools
	$(CARGO) test --workspace --doc
	$(CARGO) nextest run --workspace --no-fail-fast

## bench: the standard benchmark scenarios (release build); writes bench/results/<date>.json and .md
bench:
	./scripts/bench.sh

## build: release build of the daemon
# Property-based fuzzing of the stream-entry parser, the envelope builder and
# the signature header parsers: the same tests `make test` runs with 256 cases
# each, here with FUZZ_CASES (default 200000) cases each, optimised.
FUZZ_CASES ?= 200000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release -p hookd-core -p hookd-signature --test properties

# schemathesis against a real hookd's OpenAPI document (CI runs it too).
schemathesis:
	scripts/schemathesis.sh

# The chaos suite for CHAOS_SECONDS (default 300); `make test` runs it for 20 s.
CHAOS_SECONDS ?= 300
chaos: check-tools
	CHAOS_SECONDS=$(CHAOS_SECONDS) cargo nextest run -p hookd-tests --test chaos --no-capture

## chaos-cluster: the chaos suite on a Redis Cluster (masters killed, daemons killed) for CHAOS_SECONDS
chaos-cluster: check-tools
	CHAOS_SECONDS=$(CHAOS_SECONDS) cargo nextest run -p hookd-tests --test chaos_cluster --no-capture

build:
	$(CARGO) build --release -p hookd

## lint: formatting and clippy, as CI runs them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

check-tools:
	@command -v redis-server >/dev/null 2>&1 || { echo "installing redis-server (the tests spawn their own)"; apt-get update -qq && apt-get install -y -qq redis-server; }
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked
	@python3 -c 'import standardwebhooks' 2>/dev/null || python3 -m pip install -q 'standardwebhooks==1.1.0'
	@python3 -c 'import openapi_spec_validator' 2>/dev/null || python3 -m pip install -q 'openapi-spec-validator==0.9.0'
	@command -v openapi-python-client >/dev/null 2>&1 || python3 -m pip install -q 'openapi-python-client==0.29.1'
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (headless browser tests)"; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@python3 -c 'import playwright' 2>/dev/null || python3 -m pip install -q 'playwright==1.49.1'
	@python3 -c 'import redis' 2>/dev/null || python3 -m pip install -q 'redis==5.2.1'
	@command -v promtool >/dev/null 2>&1 || { echo "installing prometheus (promtool checks the alert rules)"; apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }
	@python3 -c 'import opentelemetry.proto' 2>/dev/null || python3 -m pip install -q 'opentelemetry-proto==1.38.0'
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "installing postgresql (history tests start their own cluster)"; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
	@command -v node >/dev/null 2>&1 || { echo "installing nodejs (receiver tests)"; apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
	@[ -d tests/node/node_modules ] || (cd tests/node && npm ci --no-audit --no-fund -q)
