# The targets that people and CI both use. Everything builds with --release so that there is one
# build profile (and one target directory's worth of artifacts) to keep warm.

CARGO  ?= cargo
PYTHON ?= python3
PYTEST_ARGS ?=

# Cargo builds into CARGO_TARGET_DIR when it is set (one per worktree), else target/.
BIN  := $(or $(CARGO_TARGET_DIR),target)/release/flink
DIST := dist/flink

# The container image: tagged so that the reference README's `docker run ... apache/flink:latest`
# works as written, and with the crate version.
VERSION   := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n 1)
IMAGE     ?= apache/flink
IMAGE_DIR := target/image
BUSYBOX   ?= /bin/busybox
COMPOSE   ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: all build run dist test lint clean image compose-up compose-down cluster-up cluster-down bench bench-txn bench-security bench-latency bench-cluster bench-replication bench-storage bench-mesh fuzz soak chaos librdkafka-tests

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

# The image, built FROM scratch with nothing pulled: deploy/docker/make-rootfs.sh packs the dist, the
# libraries the binary links and a static busybox (BUSYBOX, from busybox-static) into
# $(IMAGE_DIR)/rootfs.tar, the whole build context. `make -o dist image` builds from the current dist.
image: dist
	deploy/docker/make-rootfs.sh $(DIST) $(BUSYBOX) $(IMAGE_DIR)
	docker build --build-arg FLINK_VERSION=$(VERSION) -t $(IMAGE):latest -t flink:$(VERSION) $(IMAGE_DIR)

# The single-node compose file (deploy/docker-compose.yml). Compose reads the seccomp profile
# relative to the working directory, hence the cd.
compose-up: image
	cd deploy && $(COMPOSE) up -d

compose-down:
	cd deploy && $(COMPOSE) down

# The reference README's three controllers and three brokers (deploy/docker-compose.cluster.yml):
# brokers at localhost:29092, localhost:39092 and localhost:49092 from the host.
cluster-up: image
	cd deploy && $(COMPOSE) -f docker-compose.cluster.yml up -d

cluster-down:
	cd deploy && $(COMPOSE) -f docker-compose.cluster.yml down

# Everything: installs what the suite needs when it is missing (tests/setup.sh: kcat and other
# Debian packages as root, the pinned Python clients), then unit and property tests, then
# librdkafka's own transaction tests (librdkafka-tests), then the integration suite against the
# dist copy.
test: dist
	PYTHON=$(PYTHON) tests/setup.sh
	$(CARGO) test --release
	PYTHON=$(PYTHON) FLINK_DIST=$(DIST) tests/librdkafka/run.sh $(LIBRDKAFKA_TESTS)
	$(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

# librdkafka's own test suite (its tests/ directory and test-runner) against a fresh cluster of
# three combined Flink nodes: tests 0103 (transactions) and 0129 (fetch aborted messages) by
# default (tests/librdkafka/README.md). librdkafka is built once into $$FLINK_TEST_CACHE (by
# default ~/.cache/flink-tests; one to two minutes); a run then takes about 70 s. LIBRDKAFKA_TESTS
# names other tests; LIBRDKAFKA_DEBUG, LIBRDKAFKA_ARGS, SUBTESTS, TEST_KAFKA_VERSION tune it.
LIBRDKAFKA_TESTS ?= 0103 0129

librdkafka-tests: dist
	PYTHON=$(PYTHON) FLINK_DIST=$(DIST) tests/librdkafka/run.sh $(LIBRDKAFKA_TESTS)

# The long fault-injection runs against the dist, as `test` runs the suite: 3 controllers and 3
# brokers, every fault for CHAOS_SECONDS, a history checker at the end; first an idempotent
# producer (tests/integration/chaos.py), then transactions (tests/integration/txn_chaos.py).
# The network partition needs root, iptables and setpriv (util-linux); without them only that
# fault is skipped. CHAOS_SEED replays a run (each run prints its seed); CHAOS_ARGS adds options
# (--faults kill-leader,stop-follower, --keep, --work-dir DIR), CHAOS_TXN_ARGS the same for
# txn_chaos.py.
CHAOS_SECONDS ?= 600
CHAOS_SEED ?=
CHAOS_ARGS ?=
CHAOS_TXN_ARGS ?=

chaos: dist
	$(PYTHON) tests/integration/chaos.py --duration $(CHAOS_SECONDS) \
		$(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(CHAOS_ARGS)
	$(PYTHON) tests/integration/txn_chaos.py --duration $(CHAOS_SECONDS) \
		$(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(CHAOS_TXN_ARGS)

# Flink against a peer Kafka-compatible broker (tansu, built once into $$FLINK_BENCH_CACHE, by
# default ~/.cache/flink-bench) and against the machine's disk, loopback and memcpy ceilings, all
# in one run with the same librdkafka client (bench/README.md); writes bench/results/broker.md and
# its PNGs. BENCH_SECONDS, BENCH_E2E_SECONDS, BENCH_ROUNDS, BENCH_DIR, BENCH_E2E_RATE tune it.
bench: dist
	CARGO=$(CARGO) FLINK_DIST=$(DIST) bench/broker.sh
	CARGO=$(CARGO) FLINK_DIST=$(DIST) bench/transactions.sh
	CARGO=$(CARGO) FLINK_DIST=$(DIST) bench/security.sh

# What TLS and SASL cost: produce, consume and latency over PLAINTEXT, SSL and SASL_SSL
# (SCRAM-SHA-512) listeners of one broker in the same round (bench/README.md, "Security"); writes
# bench/results/security.md. Part of `bench`.
bench-security: dist
	CARGO=$(CARGO) FLINK_DIST=$(DIST) bench/security.sh

# Transactional throughput and commit latency against the same workload without transactions
# (bench/README.md, "Transactions"); writes bench/results/transactions.md. Part of `bench`.
bench-txn: dist
	CARGO=$(CARGO) FLINK_DIST=$(DIST) bench/transactions.sh

# Delivery latency against offered load (1% to 100% of Flink's own maximum, per producer setting)
# for Flink, the null sink (bench/null-sink, the client's ceiling) and the peer, in one run
# (bench/README.md); writes bench/results/latency.md and latency-*.png. BENCH_PEER=0 skips the
# peer; BENCH_LATENCY_SECONDS, BENCH_LATENCY_PERCENTS, BENCH_LATENCY_SETTINGS tune it.
bench-latency: dist
	CARGO=$(CARGO) FLINK_DIST=$(DIST) bench/latency.sh

# The deterministic fault simulations over many more seeds: the metadata quorum (2,200 seeds,
# quorum::sim_tests) and replication (2,000 seeds of 3, 4 and 5 replicas, replication::sim_tests).
soak:
	$(CARGO) test --release --lib soak_many_seeds -- --ignored --nocapture
	$(CARGO) test --release --lib soak_replication_many_seeds -- --ignored --nocapture

# Metadata path of a 3 controllers + 3 brokers cluster against a single node measured in the same
# run (bench/README.md); writes bench/results/cluster_metadata.md.
bench-cluster: dist
	FLINK_DIST=$(DIST) $(PYTHON) bench/cluster_metadata.py

# What replication costs and how it recovers on the same cluster: acks=all produce latency and
# throughput of an RF3 topic against an RF1 one measured in the same run, then failover after
# SIGKILL of a leader and the restarted broker's catch-up (bench/README.md); writes
# bench/results/replication.md; then delivery latency against offered load for RF1 and RF3 with
# linger.ms=0 and 1, five rounds, the maxima and CPU per MiB (bench/replication_curves.py,
# bench/results/replication-curves.md). BENCH_REPLICATION_ARGS adds options to the first
# (--rounds 5, --keep), BENCH_REPLICATION_CURVES_ARGS to the second (--rounds 1).
BENCH_REPLICATION_ARGS ?=
BENCH_REPLICATION_CURVES_ARGS ?=

bench-replication: dist
	FLINK_DIST=$(DIST) $(PYTHON) bench/replication.py $(BENCH_REPLICATION_ARGS)
	FLINK_DIST=$(DIST) $(PYTHON) bench/replication_curves.py $(BENCH_REPLICATION_CURVES_ARGS)

# Cross-shard round trips over the mesh's channel and its alternatives, parked and polling
# (bench/README.md, "Mesh: cross-shard round trips"); prints one line per case.
bench-mesh:
	$(CARGO) bench --bench mesh -- --round-trips $(or $(BENCH_ROUND_TRIPS),50000)

# Storage append throughput as a ratio of the disk's raw O_DIRECT bandwidth, measured in the same
# run (bench/README.md); writes bench/results/storage.md. BENCH_MIB, BENCH_ROUNDS, BENCH_DIR tune it.
bench-storage:
	CARGO=$(CARGO) bench/storage.sh

# Fuzzes segment recovery on corrupted files, then request framing and decoding, produce
# validation and the OAUTHBEARER exchange (fuzz/README.md), each for FUZZ_SECONDS after replaying
# its seeds. Needs cargo-fuzz (`cargo install cargo-fuzz
# --locked`); RUSTC_BOOTSTRAP=1 lets the stable toolchain take the nightly-only flags cargo-fuzz
# passes. Fails on the first finding (a finding in segment_recovery skips request_decoding).
FUZZ_SECONDS ?= 60

fuzz:
	mkdir -p fuzz/corpus/segment_recovery fuzz/corpus/request_decoding fuzz/corpus/produce_validation \
		fuzz/corpus/oauthbearer
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run segment_recovery fuzz/corpus/segment_recovery \
		fuzz/seeds/segment_recovery -- -max_total_time=$(FUZZ_SECONDS) -timeout=30
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run request_decoding fuzz/corpus/request_decoding \
		fuzz/seeds/request_decoding -- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 \
		-malloc_limit_mb=256
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run produce_validation fuzz/corpus/produce_validation \
		fuzz/seeds/produce_validation -- -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 \
		-detect_leaks=0
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run oauthbearer fuzz/corpus/oauthbearer fuzz/seeds/oauthbearer \
		-- -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=256

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

clean:
	$(CARGO) clean
	rm -rf dist
