# rehearsal: build, test and run the operator and its driver.
# Everything the targets need is built or installed by the targets themselves.

SHELL := /bin/bash
CARGO ?= cargo
SANDBOX := e2e/cluster/sandbox.sh

.PHONY: all build test unit e2e crds lint fmt demo bench bench-webhook bench-replay bench-scale bench-scenario bench-scenario-scale bench-operator sandbox-up sandbox-down sandbox-status cluster-bins clean

all: build

## build: compile every binary (operator, driver, process runner)
build:
	$(CARGO) build --workspace --bins

## unit: tests that need no cluster (Chromium installed first, for the report's render test)
unit: chromium
	$(CARGO) test --workspace --exclude rehearsal-e2e
	e2e/gitops/test.sh

## chromium: Debian's Chromium (/usr/bin/chromium) for the report's render test; does nothing when installed
.PHONY: chromium
chromium:
	e2e/install-chromium.sh

## gitops-test: the Argo CD health scripts and kstatus (Flux) checks of config/gitops (Go, no cluster)
.PHONY: gitops-test
gitops-test:
	e2e/gitops/test.sh

## e2e: end-to-end tests on the local control plane (started here when it is not running)
## The operator's test runs last, alone: it installs the operator, which would otherwise also
## reconcile the Simulations of the tests that run drivers by hand.
e2e: cluster-bins
	e2e/run-with-sandbox.sh e2e/run-e2e.sh $(CARGO)

## test: every test, unit and end-to-end
test: unit e2e

## crds: regenerate config/crd/*.yaml from the Rust types
crds:
	$(CARGO) run -q -p rehearsal-operator --bin crdgen -- config/crd

## fuzz: the trace readers and scenario loaders on mutated fixtures, FUZZ_SECONDS per target (default 30)
.PHONY: fuzz
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-30} $(CARGO) test -p rehearsal-driver --test fuzz -- --nocapture --test-threads 1

## lint: formatting check, clippy and rustdoc (private items too) with warnings denied
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --document-private-items

fmt:
	$(CARGO) fmt --all

## cluster-bins: build the control plane's binaries from their Go modules (cached in ~/.cache/rehearsal)
cluster-bins:
	e2e/cluster/build.sh >/dev/null

## sandbox-up / sandbox-down / sandbox-status: the local control plane on 127.0.0.1
sandbox-up: cluster-bins
	$(CARGO) build -q -p rehearsal-runner -p rehearsal-driver -p rehearsal-operator
	$(SANDBOX) up

sandbox-down:
	$(SANDBOX) down

sandbox-status:
	$(SANDBOX) status

## demo: the main job, end to end on the local control plane
demo: cluster-bins
	e2e/demo.sh

## bench: every benchmark part below, one after the other; figures printed, not asserted, and
## written to bench-results/<part>.json (REHEARSAL_BENCH_RESULTS moves it); compare two runs with
## rehearsal-driver bench compare OLD.json NEW.json
# Recipe lines rather than prerequisites: the parts run in this order even under make -j, and
# never at the same time (they share the sandbox and measure CPU).
bench:
	$(MAKE) --no-print-directory bench-webhook
	$(MAKE) --no-print-directory bench-replay
	$(MAKE) --no-print-directory bench-scale
	$(MAKE) --no-print-directory bench-scenario
	$(MAKE) --no-print-directory bench-scenario-scale
	$(MAKE) --no-print-directory bench-operator

## bench-webhook: the admission webhook's latency at 1,000 requests/s (no cluster) -> webhook.json
bench-webhook:
	REHEARSAL_BENCH_ONLY=webhook e2e/bench.sh

## bench-replay: trace memory, replay lateness and throughput, peak RSS, the collectors' cost, on the
## local control plane -> replay.json (REHEARSAL_BENCH_ONLY="rss collectors" picks sections)
bench-replay: cluster-bins
	REHEARSAL_BENCH_ONLY="$${REHEARSAL_BENCH_ONLY:-memory replay rss collectors}" e2e/run-with-sandbox.sh e2e/bench.sh

## bench-scale: e2e/bench-scale.sh on the local control plane -> scale.json
bench-scale: cluster-bins
	REHEARSAL_VIRTUAL_NODES=$${REHEARSAL_VIRTUAL_NODES:-$${REHEARSAL_SCALE_NODES:-1000}} \
	  e2e/run-with-sandbox.sh e2e/bench-scale.sh

## bench-scenario: the scenario player's step lateness and drift, on the local control plane -> scenario.json
bench-scenario: cluster-bins
	e2e/run-with-sandbox.sh e2e/bench-scenario.sh

## bench-scenario-scale: the scenario player at scale (500 Deployments, 120 steps of 100 scales at
## speed 15) on the local control plane with 1,000 virtual nodes, started with them when none is
## up (REHEARSAL_SCENARIO_SCALE_NODES, or REHEARSAL_VIRTUAL_NODES, says how many) -> scenario-scale.json
bench-scenario-scale: cluster-bins
	REHEARSAL_VIRTUAL_NODES=$${REHEARSAL_VIRTUAL_NODES:-$${REHEARSAL_SCENARIO_SCALE_NODES:-1000}} \
	  e2e/run-with-sandbox.sh e2e/bench-scenario-scale.sh

## bench-operator: the operator's reconcile latency and memory with 100 queued, on the local control
## plane -> operator.json
bench-operator: cluster-bins
	e2e/run-with-sandbox.sh e2e/bench-operator.sh

## scenario-driver-build / scenario-driver-run: the Karpenter scenario driver's targets, for
## rehearsal-driver scenario. The run reads SCENARIO, NAMESPACE, LOG_DIR, KUBECONFIG, S3_BUCKET
## and S3_REGION from the environment; ARGS adds flags (e.g. ARGS="--speed 15 --keep").
.PHONY: scenario-driver-build scenario-driver-run
scenario-driver-build:
	$(CARGO) build --release -p rehearsal-driver

scenario-driver-run: scenario-driver-build
	target/release/rehearsal-driver scenario $(ARGS)

clean:
	$(CARGO) clean
