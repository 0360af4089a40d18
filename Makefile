# The targets that people and CI both use. Everything builds with --release so that there is one
# build profile (and one target directory's worth of artifacts) to keep warm.

CARGO  ?= cargo
PYTHON ?= python3
PYTEST_ARGS ?=

BIN  := target/release/flink
DIST := dist/flink

.PHONY: all build run dist test lint clean

all: build

build:
	$(CARGO) build --release

# A broker on localhost:9092 with the embedded default config (data in /tmp/flink-combined-logs).
run: build
	$(BIN) server

# The distribution layout the README's quick start uses: bin/ with the binary and the wrapper
# scripts, config/ with the sample server.properties.
dist: build
	rm -rf $(DIST)
	mkdir -p $(DIST)/bin $(DIST)/config
	cp $(BIN) $(DIST)/bin/flink
	cp deploy/bin/*.sh $(DIST)/bin/
	chmod 755 $(DIST)/bin/*
	cp deploy/config/server.properties $(DIST)/config/

# Everything: unit and property tests, then the integration suite against the dist copy.
test: dist
	$(CARGO) test --release
	$(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf dist
