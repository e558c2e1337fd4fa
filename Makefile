# Thin wrappers over the npm scripts, so that `npm test` and `make test` are the same thing.
BUN := node_modules/.bin/bun
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: all build test typecheck lint unit demo clean

all: build

node_modules: package.json package-lock.json
	npm ci
	@touch node_modules

build: node_modules
	npm run --silent build

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

clean:
	rm -rf dist
