# FACTSTR for Go. `make help` lists the targets.
GO       ?= go
BIN      := $(CURDIR)/bin
PKGS     := ./...
TESTFLAGS ?= -race -count=1 -timeout 25m

.PHONY: help build test vet lint proto proto-check tools node clean release

# Version information for `factstr-node version`: the nearest tag (or the
# commit) and the commit, when this is a git checkout.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git describe --always --dirty --abbrev=40 --match=NONE 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build factstr-node into bin/
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/factstr-node ./cmd/factstr-node

release: ## static binaries for $(RELEASE_PLATFORMS) into bin/release, with SHA256SUMS
	rm -rf $(BIN)/release && mkdir -p $(BIN)/release
	set -e; for p in $(RELEASE_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "factstr-node $(VERSION) $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o $(BIN)/release/factstr-node-$(VERSION)-$$os-$$arch ./cmd/factstr-node; \
	done
	cp LICENSE LICENSE-MIT LICENSE-APACHE $(BIN)/release/
	cd $(BIN)/release && $$(command -v sha256sum || echo shasum -a 256) factstr-node-* > SHA256SUMS
	@cat $(BIN)/release/SHA256SUMS

node: build ## build, then run a single node with ./factstr-data (gRPC on 127.0.0.1:7400)
	exec $(BIN)/factstr-node

test: ## the test suite, as CI runs it
	$(GO) test $(TESTFLAGS) $(PKGS)

vet: ## go vet, gofmt, and every package (but generated code) has tests of its own
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@out=$$($(GO) list -f '{{if not (or .TestGoFiles .XTestGoFiles)}}{{.ImportPath}}{{end}}' $(PKGS) | grep -v '/api/gen/'); \
		if [ -n "$$out" ]; then echo "packages without a _test.go:"; echo "$$out"; exit 1; fi

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## build pinned code generators into bin/

$(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc: tools/go.mod
	cd tools && $(GO) build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

proto: tools ## regenerate api/gen from api/proto
	$(BIN)/buf lint
	$(BIN)/buf generate

proto-check: proto ## fail if generated code is stale or the protos are not lint-clean
	@git diff --exit-code -- api/gen || (echo "api/gen is stale: run make proto and commit"; exit 1)

clean: ## remove build output
	rm -rf $(BIN)

# --- deploy (issue 7): container image, compose, Kubernetes checks ---
IMAGE    ?= factstr-node:dev

.PHONY: image compose-test k8s-validate k8s-dryrun k8s-e2e

image: ## build the container image $(IMAGE) (static binary FROM scratch; no registry needed)
	rm -rf $(BIN)/image && mkdir -p $(BIN)/image/data $(BIN)/image/etc
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/image/factstr-node ./cmd/factstr-node
	cp deploy/image/etc/passwd deploy/image/etc/group $(BIN)/image/etc/
	DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile -t $(IMAGE) $(BIN)/image

compose-test: ## the docker compose cluster test (needs a Docker engine; part of make test)
	CI=true $(GO) test -count=1 -v -timeout 15m -run TestCompose ./deploy/

k8s-validate: ## strict decoding and invariants of deploy/k8s (own module under deploy/k8s/validate)
	cd deploy/k8s/validate && $(GO) mod verify && $(GO) vet ./... && $(GO) test -count=1 ./...

k8s-dryrun: ## kubectl apply --dry-run=server against a real kube-apiserver+etcd on 127.0.0.1
	deploy/k8s/dryrun.sh

k8s-e2e: ## opt-in: the StatefulSet on a real kubelet+containerd on this host (root; changes and restores host settings)
	deploy/k8s/e2e.sh

# ---- performance (docs/performance.md) ----
.PHONY: bench bench-tools bench-compare

bench-tools: ## build factstr-node and the etcd helper (bench/etcd, a module of its own) into bin/
	CGO_ENABLED=0 $(GO) build -o $(BIN)/factstr-node ./cmd/factstr-node
	cd bench/etcd && CGO_ENABLED=0 $(GO) build -o $(BIN)/factstr-etcd-bench .

# Three rounds, alternating which system goes first, and the median of the
# rounds' ratios: this machine's speed drifts by a third from one minute to
# the next, and one round of each system is not a comparison.
COMPARE_ROUNDS ?= 3

bench-compare: bench-tools ## FACTSTR vs etcd, 3 loopback nodes each, same workloads, median of 3 rounds (about 8 minutes; COMPARE_ROUNDS=1 for one, COMPARE_FLAGS=...)
	$(GO) run ./bench/compare --bin-dir $(BIN) --rounds $(COMPARE_ROUNDS) $(COMPARE_FLAGS)

bench: build ## load a running cluster: make bench BENCH_ARGS='--workload append --addr 127.0.0.1:7400'
	$(BIN)/factstr-node bench $(BENCH_ARGS)

# ---- fault-injection suite (issue 6; docs/fault-testing.md). Needs root: network namespaces, a bridge, nftables. ----
.PHONY: jepsen-smoke jepsen-negative jepsen-full jepsen-cleanup
JEPSEN_OUT   ?= $(BIN)/jepsen
JEPSEN_FLAGS ?=

jepsen-smoke: ## fault suite: 3 nodes in netns, leader partition + kill + pause, every checker (~3 min; exit 0 only without anomalies)
	$(GO) test -count=1 -timeout 5m ./jepsen-style/...
	$(GO) run ./jepsen-style/cmd/jepsen -mode smoke -repo $(CURDIR) -out $(JEPSEN_OUT)/smoke $(JEPSEN_FLAGS)

jepsen-negative: ## negative control: the smoke against --unsafe-local-reads nodes; exit 0 only if stale reads are reported (~1.5 min)
	$(GO) run ./jepsen-style/cmd/jepsen -mode negative -repo $(CURDIR) -out $(JEPSEN_OUT)/negative $(JEPSEN_FLAGS)

jepsen-full: ## fault suite, every nemesis (~20 min; report in $(JEPSEN_OUT)/full)
	$(GO) run ./jepsen-style/cmd/jepsen -mode full -repo $(CURDIR) -out $(JEPSEN_OUT)/full $(JEPSEN_FLAGS)

jepsen-cleanup: ## remove what an interrupted fault run left (namespaces, bridge, FORWARD rule, node processes)
	$(GO) run ./jepsen-style/cmd/jepsen -cleanup
