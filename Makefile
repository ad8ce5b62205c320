# FACTSTR for Go. `make help` lists the targets.
GO       ?= go
BIN      := $(CURDIR)/bin
PKGS     := ./...
TESTFLAGS ?= -race -count=1 -timeout 25m

.PHONY: help build test vet lint proto proto-check tools node clean

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build factstr-node into bin/
	CGO_ENABLED=0 $(GO) build -o $(BIN)/factstr-node ./cmd/factstr-node

node: ## run a single node with ./factstr-data
	$(GO) run ./cmd/factstr-node

test: ## the test suite, as CI runs it
	$(GO) test $(TESTFLAGS) $(PKGS)

vet: ## go vet and gofmt
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

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
