# Aegis: build, test, lint and bench. CI runs `.ci/run`, which calls `make lint` and `make test`.
#
#   make toolchain   the wasm32-wasip2 target (and clippy/rustfmt)
#   make guests      the guest SDK and fixture components (guest-workflows/)
#   make build       the host and the test crate (whose build.rs builds the guests too)
#   make test        host + end-to-end tests (nextest when installed) and the guest SDK's tests
#   make interop-deps the official Python A2A SDK the interop test's agent is built on (pip)
#   make ui-deps     Debian's chromium and Playwright for Python, the web console's browser tests
#   make lambda-deps boto3 and the AWS CLI, which drive the Lambda durable API's test (pip)
#   make s3s-fs      the S3 server the presigned-URL expiry test runs against (cargo install)
#   make lint        rustfmt --check and clippy -D warnings, both workspaces
#   make bench       the HTTP bench driver against a release host (BENCH_ARGS="--quick --only W1";
#                    "--only W1,W1-lambda" adds W1 through the Lambda durable API, for its overhead;
#                    BENCH_ARGS="--store dynamodb" runs it on the DynamoDB store, on moto's server
#                    that it starts through .ci/moto-server), then the replay benchmark
#   make bench-hostile the hostile-guest suite measured against a release host: per attack, how
#                    it ended, the time to contain it, the host's peak RSS and the canaries' p99
#                    (HOSTILE_ARGS="--attacks wait-flood,trap-storm" runs some)
#   make demo        `aegis demo`
#   make soak        the crash-loop soak: 1,000 SIGKILLs across 100 executions on a release host
#                    (SOAK_ARGS="--kills 200 --seed 7"; SOAK_PROFILE=dev for a debug host)
#   make contract-fuzz schemathesis against the host's /v1/openapi.json (part of `make test`)
#   make conformance AWS's durable-execution conformance suite against a debug host (part of
#                    `make test`: fails below tests/conformance/baseline); conformance-deps installs it

CARGO ?= cargo
GUESTS := guest-workflows
WASM_TARGET := wasm32-wasip2
BENCH_ARGS ?=
HOSTILE_ARGS ?=

# nextest gives each test its own process and a slow-test timeout (tests/nextest.toml);
# plain `cargo test` is the fallback where it is not installed.
HAVE_NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

# The storage contract suite runs on the embedded store and on DynamoDB: this starts one moto
# server (`python3 -m pip install "moto[server]"`) for the whole run unless
# AEGIS_DYNAMODB_ENDPOINT names a server already.
WITH_DYNAMODB := ./.ci/with-dynamodb

.PHONY: all toolchain guests build test test-host test-guests interop-deps ui-deps lambda-deps s3s-fs lint bench bench-hostile demo \
	soak contract-fuzz contract-fuzz-deps conformance conformance-deps

all: build

toolchain:
	./.ci/toolchain

guests: toolchain
	cd $(GUESTS) && $(CARGO) build --release --target $(WASM_TARGET) --workspace

build: toolchain
	$(CARGO) build --workspace --all-targets

test: toolchain interop-deps ui-deps lambda-deps conformance-deps s3s-fs contract-fuzz-deps test-host test-guests \
	contract-fuzz conformance

# The end-to-end tests run the host and the demo agents binaries.
test-host:
	$(CARGO) build -p aegis -p aegis-demo-agents
ifeq ($(HAVE_NEXTEST),yes)
	$(WITH_DYNAMODB) $(CARGO) nextest run --workspace --config-file tests/nextest.toml
else
	$(WITH_DYNAMODB) $(CARGO) test --workspace --no-fail-fast
endif

# The interop test (tests/tests/e2e/interop.rs) runs an A2A v1.0 agent written with the official
# Python SDK (tests/interop/a2a_agent.py).
interop-deps:
	python3 -m pip install --quiet "a2a-sdk[http-server]==1.3.0" uvicorn

# The web console's browser tests (tests/tests/e2e/console.rs) drive Debian's chromium with
# Playwright for Python (tests/console/); Playwright's own browser download is not used.
PLAYWRIGHT_VERSION := 1.65.2
ui-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq chromium; fi; \
	fi
	python3 -m pip install --quiet "playwright==$(PLAYWRIGHT_VERSION)"

# The Lambda durable API's test (tests/tests/e2e/lambda.rs) drives the host with AWS's own
# clients: boto3's lambda client and the AWS CLI, in releases whose service model has the
# durable operations (awscli 1.45.11 is the CLI of botocore 1.43.11).
lambda-deps:
	python3 -m pip install --quiet "boto3==1.43.11" "awscli==1.45.11"

# The S3 presigned-URL expiry test (tests/tests/e2e/aws.rs) runs against s3s-fs, an S3 server
# over a folder that checks the expiry of presigned URLs (moto's does not). 0.14.1 is the newest
# release that builds on our toolchain; installing it takes about 2.5 minutes, once.
S3S_FS_VERSION := 0.14.1
s3s-fs:
	@if s3s-fs --version 2>/dev/null | grep -qx "s3s-fs $(S3S_FS_VERSION)"; then :; else \
		$(CARGO) install s3s-fs@$(S3S_FS_VERSION) --features binary --locked; \
	fi

test-guests:
	cd $(GUESTS) && $(CARGO) test -p aegis-sdk

# Contract fuzzing (.ci/contract-fuzz): schemathesis runs against /v1/openapi.json of a real host
# in keyed mode, tenant routes with a tenant key and admin routes with the admin key; any 5xx
# or answer outside the document fails. About two minutes.
SCHEMATHESIS_VERSION := 4.32.*
contract-fuzz-deps:
	python3 -m pip install --quiet "schemathesis==$(SCHEMATHESIS_VERSION)"

# The same package set as test-host, so that features unify the same way and nothing rebuilds.
contract-fuzz: guests
	$(CARGO) build -p aegis -p aegis-demo-agents
	./.ci/contract-fuzz

lint: toolchain
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The host without the research pipeline (feature `pipeline`): keeps the generic host free of it.
	$(CARGO) clippy -p aegis --no-default-features --all-targets -- -D warnings
	cd $(GUESTS) && $(CARGO) fmt --all --check
	cd $(GUESTS) && $(CARGO) clippy --workspace --target $(WASM_TARGET) -- -D warnings
	cd $(GUESTS) && $(CARGO) clippy -p aegis-sdk --all-targets -- -D warnings

bench: toolchain
	$(CARGO) build --release -p aegis
	$(CARGO) run --release -p aegis-tests --bin aegis-bench -- $(BENCH_ARGS)
	$(CARGO) bench -p aegis --bench replay

bench-hostile: toolchain
	$(CARGO) build --release -p aegis
	$(CARGO) run --release -p aegis-tests --bin aegis-bench -- --hostile $(HOSTILE_ARGS)

# The crash-loop soak (tests/src/crashloop.rs): the host SIGKILLed at random moments 1,000 times
# across 100 executions of steps, retries, waits, callbacks and agent calls; prints the kills,
# executions, lost executions, steps run twice and the slowest recovery, and fails on any loss.
# A release host by default (SOAK_PROFILE=dev runs the debug build the tests use).
SOAK_ARGS ?=
SOAK_PROFILE ?= release
SOAK_DIR := target/$(if $(filter dev,$(SOAK_PROFILE)),debug,$(SOAK_PROFILE))
soak: guests
	$(CARGO) build --profile $(SOAK_PROFILE) -p aegis -p aegis-tests --bin aegis --bin aegis-crashloop
	$(SOAK_DIR)/aegis-crashloop $(SOAK_ARGS)

# The research pipeline end to end: demo agents, host and embedded store, with an approval.
# A fresh data folder each run, so the demo always starts from nothing. APPROVE=1 skips the prompt.
demo: guests
	$(CARGO) build -p aegis -p aegis-demo-agents
	rm -rf target/demo-data
	./target/debug/aegis demo --data-dir target/demo-data $(if $(filter 1 yes true,$(APPROVE)),--approve,)

# AWS's durable-execution conformance suite (tests/conformance/run.py): the conformance component
# (guest-workflows/conformance) uploaded under one function name per handled requirement, each
# requirement run by AWS's own validator against a debug host on a free port (tests/conformance/
# with-host). Prints a table per suite and N/155; fails when N drops below
# tests/conformance/baseline, which is how CI (`make test`) keeps the figure from falling.
# CONFORMANCE_ARGS="--only 1-1,4-3 --verbose" runs some.
# The suite declares Python >= 3.14 but its modules run on 3.11: hence --ignore-requires-python.
CONFORMANCE_ARGS ?=
conformance-deps:
	python3 -m pip install --quiet "boto3==1.43.11" pyyaml
	python3 -m pip install --quiet --no-deps --ignore-requires-python \
		"aws-durable-execution-conformance-tests==1.0.0"

# The same package set as test-host, so that features unify the same way and nothing rebuilds.
conformance: guests
	$(CARGO) build -p aegis -p aegis-demo-agents
	./tests/conformance/with-host $(CONFORMANCE_ARGS)
