# skiff's build. Every target works on a fresh Debian 12 machine as root.
GO      ?= go
BIN     := bin/skiff
PKGS    := ./...
# Tests that share netns, bpffs and containerd run one package at a time.
TESTFLAGS ?= -p 1 -timeout 60m

.PHONY: build generate test e2e bench lint up down clean deps images fuzz

build:
	$(GO) build -o $(BIN) ./cmd/skiff

# Regenerate the bpf2go objects with Debian's clang; CI fails on any diff.
generate:
	$(GO) generate ./datapath/...

deps:
	bash .ci/deps

# The test command of the README; .ci/run calls it with SKIFF_E2E=1.
test: deps build
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

# Only the end-to-end tests (root, netns, BPF, containerd).
e2e: deps build
	SKIFF_E2E=1 $(GO) test $(TESTFLAGS) -run 'E2E' $(PKGS)

fuzz:
	bash .ci/fuzz

bench: deps build
	./$(BIN) bench datapath --services 1,1000 --duration 3s --out bench-out

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | xargs grep -L '^// Code generated')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

images: build
	./$(BIN) image build --out testdata/images

up: deps build
	./$(BIN) up --nodes 3

down: build
	./$(BIN) down

clean:
	rm -rf bin bench-out
