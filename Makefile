# relay: make lists the targets; see README.md for the whole story.
#
# go.work ties the modules together, but `./...` never crosses a module
# boundary, so every per-module target loops over MODULES explicitly.
# Override on the command line, e.g. `make test MODULES=pkg`.

MODULES  ?= pkg services/ingress services/forwarder services/catering-stub cmd/relayctl deployments bench test/e2e
SERVICES ?= ingress forwarder catering-stub

GO       ?= go
BIN      ?= bin
# GOFLAGS from the environment reaches every go command untouched; these add
# to it only where they belong.
BUILDFLAGS ?= -trimpath
TESTFLAGS  ?= -race -count=1 -timeout 8m
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    ?= -X main.version=$(VERSION)

# docker compose (v2 plugin) when present, else the standalone docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# foreach_module runs $(1) in every module directory and fails at the end,
# naming each module where it failed, so one red module does not hide another.
define foreach_module
failed=""; \
for m in $(MODULES); do \
	echo "==> $$m: $(1)"; \
	(cd "$$m" && $(1)) || failed="$$failed $$m"; \
done; \
if [ -n "$$failed" ]; then echo "FAILED in:$$failed" >&2; exit 1; fi
endef

.PHONY: help
help: ## List the targets
	@if [ -t 1 ]; then on='\033[36m' off='\033[0m'; else on= off=; fi; \
	awk -v on="$$on" -v off="$$off" 'BEGIN {FS = ":.*## "; print "Usage: make <target>\n"} \
		/^[a-zA-Z0-9_-]+:.*## / {printf "  %s%-10s%s %s\n", on, $$1, off, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build every service and relayctl into bin/
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do \
		echo "==> $(BIN)/$$s"; \
		$(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/$$s ./services/$$s; \
	done
	@echo "==> $(BIN)/relayctl"
	@$(GO) build $(BUILDFLAGS) -ldflags '$(LDFLAGS)' -o $(BIN)/relayctl ./cmd/relayctl

.PHONY: broker
broker: ## Make a RabbitMQ broker answer at AMQP_URL (scripts/broker.sh)
	@scripts/broker.sh

# The e2e module runs the binaries from bin/, hence build first.
.PHONY: test
test: build broker ## Vet and test every module with -race against a real broker
	@$(call foreach_module,$(GO) vet ./... && $(GO) test $(TESTFLAGS) ./...)
	@$(MAKE) --no-print-directory test-fuzz

# go test -fuzz takes one package and one target at a time; -list finds them all.
# A count, not a duration: with a duration, Go before 1.27 may fail a run that
# found nothing with "context deadline exceeded" as the time runs out
# (go.dev/issue/75804). 200000 executions take about 10 s here.
FUZZTIME ?= 200000x
.PHONY: test-fuzz
test-fuzz: ## Fuzz the ingress validator briefly: each of its fuzz tests for FUZZTIME (200000x, ~10 s)
	@cd services/ingress && targets=$$($(GO) test -list '^Fuzz' ./internal/registration/ | grep '^Fuzz'); \
	for f in $$targets; do \
		echo "==> services/ingress: $$f for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./internal/registration/; \
	done

.PHONY: test-chaos
test-chaos: ## Chaos suite: real binaries against a private RabbitMQ node, faults on purpose (needs root; ~5 min)
	cd test/e2e && $(GO) test -tags chaos -run '^TestChaos' -count=1 -v -timeout 10m .

# The cluster suite builds bin/ first, as its targets' users expect; the
# test itself compiles the services it runs from source (TestMain), so it
# always runs the working tree.
.PHONY: test-cluster
test-cluster: build ## Cluster suite: real binaries against a private 3-node RabbitMQ cluster, nodes killed, restarted, hung (needs root; ~6 min)
	cd test/e2e && $(GO) test -tags cluster -run '^TestCluster' -count=1 -v -timeout 15m .

.PHONY: test-unit
test-unit: ## Run the short tests of every module (no broker, no build)
	@$(call foreach_module,$(GO) test -short -count=1 ./...)

.PHONY: run
run: ## Run broker, catering-stub, forwarder and ingress locally (Ctrl-C stops)
	@scripts/run.sh

.PHONY: bench
bench: broker bench-micro bench-cpu bench-events bench-index ## Benchmarks: micro-benchmarks, CPU per message, event cost, status lookups at 1M, the load benchmark, the peers (compare.sh), latency at a fixed rate
	@cd bench && $(GO) run ./cmd/relaybench -out results
	@$(MAKE) --no-print-directory bench-compare
	@$(MAKE) --no-print-directory bench-latency

# CPU time per message of the built services, from /proc/PID/stat, over
# steady closed-loop runs (docs/BENCHMARKS.md, "CPU per message").
CPUCOST_FLAGS ?= -rounds 3
.PHONY: bench-cpu
bench-cpu: build broker ## CPU per message: µs of ingress CPU per registration, forwarder per delivery and per attempt (20% failing)
	@mkdir -p bench/results
	@cd bench && $(GO) run ./cmd/cpucost -bin ../$(BIN) -json results/cpucost-$$(date -u +%Y%m%dT%H%M%SZ).json $(CPUCOST_FLAGS)

# What the event stream costs: the same closed-loop runs with EVENTS=off,
# then on (throughput and CPU per message; README, "Registration status").
# The first build is EVENTS=off with the forwarder's prefetch of EVENTS=on
# (8 × FORWARDER_CONCURRENCY, 32 by default): with events off it takes 2 ×,
# and a forwarder with fewer slots leaves the closed loop's ingress more of
# the machine, which is not what the events cost. The paired report puts
# both other builds over it: EVENTS=on (the events' cost) and EVENTS=off as
# it ships (the prefetch's share).
EVENTS_FLAGS ?= -rounds 2 -n 10000
EVENTS_PREFETCH ?= 256
.PHONY: bench-events
bench-events: build broker ## Event cost: cpucost with EVENTS=off (on's prefetch), EVENTS=on and EVENTS=off in alternating rounds (throughput, µs of CPU per message)
	@mkdir -p bench/results
	@cd bench && $(GO) run ./cmd/cpucost -bin ../$(BIN)+EVENTS=off+FORWARDER_PREFETCH=$(EVENTS_PREFETCH),../$(BIN)+EVENTS=on,../$(BIN)+EVENTS=off -json results/cpucost-events-$$(date -u +%Y%m%dT%H%M%SZ).json $(EVENTS_FLAGS)

# GET /catering/registrations/{id}'s lookup in the index holding
# INDEX_REGISTRATIONS registrations: p50/p99, index size, build time.
INDEX_REGISTRATIONS ?= 1000000
.PHONY: bench-index
bench-index: ## Status lookups: p50/p99 of one lookup among 1,000,000 registrations, the index's size on disk
	@cd services/ingress && RELAY_BENCH_REGISTRATIONS=$(INDEX_REGISTRATIONS) $(GO) test -run '^$$' -bench BenchmarkLookup -benchtime 20000x -timeout 30m ./internal/index/

# The peers live beside the project (../shared/peers), never copied into it;
# without them this says so and passes.
.PHONY: bench-compare
bench-compare: build broker ## relay beside the Watermill peer and the minimal build (../shared/peers/compare.sh); table into docs/BENCHMARKS.md
	@scripts/bench-compare.sh

# Open-model latency at a fixed rate with the forwarder running, relay beside
# the peers (../shared/peers, built from there), each run on a fresh vhost
# (docs/BENCHMARKS.md, "Latency under a fixed load"). Without the peers it
# measures relay alone.
LATENCY_FLAGS ?= -rate 1000 -duration 30s -rounds 3
.PHONY: bench-latency
bench-latency: build broker ## Latency at 1,000/s, open model: accept and accept-to-delivered p50/p99, relay beside the peers
	@mkdir -p bench/results
	@cd bench && $(GO) run ./cmd/latency -bin ../$(BIN) -peers ../../shared/peers -json results/latency-$$(date -u +%Y%m%dT%H%M%SZ).json $(LATENCY_FLAGS)

.PHONY: bench-micro
bench-micro: ## Hot-path micro-benchmarks (-benchmem): validation, envelope, delivery policy
	@cd services/ingress && $(GO) test -run '^$$' -bench . -benchmem ./internal/registration/
	@cd pkg && $(GO) test -run '^$$' -bench . -benchmem ./envelope/
	@cd services/forwarder && $(GO) test -run '^$$' -bench Decide -benchmem ./internal/forwarder/

.PHONY: fmt
fmt: ## Format every Go file (gofmt -w)
	@gofmt -w $(wildcard $(MODULES))

.PHONY: lint
lint: ## Fail on unformatted files; go vet every module, in go.work and on its own
	@unformatted=$$(gofmt -l $(wildcard $(MODULES))); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed (run make fmt):" >&2; echo "$$unformatted" >&2; exit 1; fi
	@$(call foreach_module,$(GO) vet ./...)
	@# Docker builds each module on its own, so its go.mod/go.sum must suffice
	@# (vet compiles the tests too, so their dependencies are checked as well).
	@$(call foreach_module,GOWORK=off $(GO) vet ./...)

.PHONY: tidy
tidy: ## go mod tidy in every module
	@$(call foreach_module,$(GO) mod tidy)

.PHONY: up
up: ## docker compose up -d --build (the whole stack in containers)
	$(COMPOSE) up -d --build

.PHONY: down
down: ## docker compose down (keeps the broker's volume)
	$(COMPOSE) down

.PHONY: clean
clean: ## Remove bin/ and .run/
	rm -rf $(BIN) .run
