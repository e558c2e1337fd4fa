# Thin wrappers over the npm scripts, so that `npm test` and `make test` are the same thing.
BUN := node_modules/.bin/bun
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

BUN_VERSION := $(shell node -p "require('./package.json').devDependencies.bun")
VERSION := $(shell node -p "require('./package.json').version")
BUN_ARM64_DIR := .tmp/bun-linux-aarch64-$(BUN_VERSION)
BUN_ARM64 := $(BUN_ARM64_DIR)/package/bin/bun

.PHONY: all build build-arm64 deb rpm test typecheck lint unit demo bench mutate clean

all: build

node_modules: package.json package-lock.json
	npm ci
	@touch node_modules

build: node_modules
	npm run --silent build
	$(MAKE) build-arm64

# Cross-compiling needs the arm64 Bun runtime: it comes from the npm registry, like the x64 one.
$(BUN_ARM64):
	rm -rf $(BUN_ARM64_DIR) && mkdir -p $(BUN_ARM64_DIR)
	cd $(BUN_ARM64_DIR) && npm pack --silent @oven/bun-linux-aarch64@$(BUN_VERSION) >/dev/null && tar xzf oven-bun-linux-aarch64-$(BUN_VERSION).tgz

# With bytecode, as the x64 build: run under qemu-user (tests/arm64.test.ts), it starts faster
# than the same build without, so the arm64 runtime takes the bytecode made here.
build-arm64: node_modules $(BUN_ARM64)
	$(BUN) build --compile --bytecode --format=esm --splitting --target=bun-linux-arm64 --compile-executable-path=$(BUN_ARM64) \
	  --no-compile-autoload-dotenv --no-compile-autoload-bunfig $$(sh packaging/build-info.sh) src/cli.ts src/homes-worker.ts --outfile dist/ddum-arm64

deb: build
	bash packaging/build-deb.sh amd64 dist/ddum
	bash packaging/build-deb.sh arm64 dist/ddum-arm64

rpm: build
	bash packaging/build-rpm.sh x86_64 dist/ddum
	bash packaging/build-rpm.sh aarch64 dist/ddum-arm64

typecheck: node_modules
	npm run --silent typecheck

lint: node_modules
	npm run --silent lint

unit: node_modules
	npm run --silent unit

test: node_modules
	npm test

demo: node_modules
	npm run --silent demo

bench: node_modules
	npm run --silent bench

# Mutation testing of the safety modules (tests/mutate.ts, stryker.config.json); slow, not part
# of CI. MUTATE="rules keys localdb" picks groups of modules (the default: all of them).
mutate: node_modules
	npm run --silent mutate -- $(MUTATE)

clean:
	rm -rf dist
