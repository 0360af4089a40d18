# What bench/broker.sh and bench/latency.sh share: building the client, the null sink and the
# peer, starting and stopping the targets (Flink, the null sink, tansu) pinned to their CPUs, and
# running the client pinned to the others. Sourced after bench/common.sh, from the repository
# root, with these set by the caller: dir (working directory), run (where raw results go), peer
# (1 to build and measure tansu, 0 not to).

dist=${FLINK_DIST:-dist/flink}
cache=${FLINK_BENCH_CACHE:-$HOME/.cache/flink-bench}
tansu_version=0.6.0
tansu=$cache/tansu-$tansu_version/bin/tansu
# The client library, the same for every target: see build_librdkafka.
librdkafka_version=2.12.1
rdkafka_sys_version=4.10.0+$librdkafka_version
# With TLS (bench/security.sh); the suffix keeps a cache built without it from being taken.
librdkafka=$cache/librdkafka-$librdkafka_version-ssl
# The null sink: its own cargo workspace in bench/null-sink, built into the root's target/.
null_sink_target=target/null-sink
null_sink=$null_sink_target/release/null-sink
partitions=2
record_bytes=1024
# Extra Flink listeners and --override arguments (see start_broker); none unless a caller sets them.
flink_listeners=${flink_listeners:-}
[ -n "${flink_overrides+set}" ] || flink_overrides=()
host=127.0.0.1
bin=$dir/bin

# Pinning: the client on the first half of the CPUs, every target on the other half (on 2 CPUs:
# the client on CPU 0, the server on CPU 1), the same for every target. BENCH_CLIENT_CPUS and
# BENCH_SERVER_CPUS (taskset lists) override; BENCH_PIN=0 pins nothing.
cpu_count=$(nproc)
if [ "${BENCH_PIN:-1}" = 0 ] || [ "$cpu_count" -lt 2 ]; then
    client_cpus=${BENCH_CLIENT_CPUS:-}
    server_cpus=${BENCH_SERVER_CPUS:-}
else
    client_cpus=${BENCH_CLIENT_CPUS:-$(seq -s, 0 $((cpu_count / 2 - 1)))}
    server_cpus=${BENCH_SERVER_CPUS:-$(seq -s, $((cpu_count / 2)) $((cpu_count - 1)))}
fi
# `pinned CPUS command...` runs the command on those CPUs, or unpinned when CPUS is empty.
pinned() {
    local cpus=$1
    shift
    if [ -n "$cpus" ]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi
}
pinning_note() {
    if [ -n "$client_cpus$server_cpus" ]; then
        echo "client_cpus=${client_cpus:-all} server_cpus=${server_cpus:-all}"
    else
        echo "client_cpus=unpinned server_cpus=unpinned"
    fi
}

say() { echo "== $*" >&2; }

# --- prerequisites -------------------------------------------------------------------------------

apt_install() {
    say "installing $* with apt-get"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
    fi
}

prerequisites() {
    command -v iperf3 >/dev/null || apt_install iperf3
    command -v gcc >/dev/null || apt_install gcc
    command -v make >/dev/null || apt_install make
    command -v taskset >/dev/null || apt_install util-linux
    [ -x /usr/bin/time ] || apt_install time
    [ -f /usr/include/zlib.h ] || apt_install zlib1g-dev
    [ -f /usr/include/openssl/ssl.h ] || apt_install libssl-dev
    python3 -c 'import matplotlib' 2>/dev/null || {
        say "installing matplotlib with pip"
        python3 -m pip install --quiet matplotlib >&2
    }
    if [ ! -x "$dist/bin/flink" ]; then
        echo "no $dist/bin/flink: run \`make dist\` (or \`make bench\`, which does)" >&2
        exit 1
    fi
    if [ "$peer" = 1 ] && [ ! -x "$tansu" ]; then
        # Built once into the cache outside the repository (about 17 minutes on 2 cores).
        say "building tansu $tansu_version into $cache (once; niced; --no-peer skips the peer)"
        nice -n 19 env CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" "${CARGO:-cargo}" install tansu \
            --version "$tansu_version" --locked --features libsql,dynostore \
            --root "$cache/tansu-$tansu_version" >&2
    fi
    [ -f "$librdkafka/lib/librdkafka.so" ] || build_librdkafka
    mkdir -p "$bin"
    build_c rdkafka_bench -I"$librdkafka/include" -L"$librdkafka/lib" -Wl,-rpath,"$librdkafka/lib" \
        -lrdkafka -lpthread -lm
    build_c ceilings
    build_null_sink
}

# librdkafka $librdkafka_version, built once into the cache. Not the distribution's: Debian 12
# ships 2.0.2, which skips tagged fields wrongly (fixed in 2.2.0, librdkafka #4278) and so cannot
# read tansu's ApiVersions response. The sources come from crates.io, where rdkafka-sys vendors
# them, fetched with cargo like any crate (about a minute to build).
build_librdkafka() {
    local fetch=$cache/librdkafka-fetch manifest source
    say "building librdkafka $librdkafka_version into $librdkafka (once; niced)"
    mkdir -p "$fetch/src"
    : >"$fetch/src/lib.rs"
    printf '%s\n' '[package]' 'name = "librdkafka-sources"' 'version = "0.0.0"' 'edition = "2021"' \
        'publish = false' '' '[dependencies]' \
        "rdkafka-sys = { version = \"=$rdkafka_sys_version\", default-features = false }" \
        >"$fetch/Cargo.toml"
    manifest=$("${CARGO:-cargo}" metadata --manifest-path "$fetch/Cargo.toml" --format-version 1 |
        python3 -c 'import json, sys
print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "rdkafka-sys"))')
    source=$cache/librdkafka-$librdkafka_version-src
    rm -rf "$source"
    cp -r "$(dirname "$manifest")/librdkafka" "$source"
    # One && chain: errexit does not apply inside a tested command.
    if ! (cd "$source" &&
        nice -n 19 ./configure --prefix="$librdkafka" --enable-ssl --disable-gssapi \
            --disable-curl --disable-zstd --disable-lz4-ext &&
        nice -n 19 make -j"${CARGO_BUILD_JOBS:-1}" libs &&
        make install-subdirs) >"$cache/librdkafka-build.log" 2>&1; then
        echo "building librdkafka failed; see $cache/librdkafka-build.log" >&2
        exit 1
    fi
    rm -rf "$source"
}

# Compiles bench/$1.c into $bin/$1 when the source is newer; the rest are linker flags.
build_c() {
    local name=$1
    shift
    if [ ! -x "$bin/$name" ] || [ "bench/$name.c" -nt "$bin/$name" ]; then
        say "compiling bench/$name.c"
        gcc -O2 -Wall -o "$bin/$name" "bench/$name.c" "$@"
    fi
}

# The null sink (bench/null-sink), its own workspace and lock file, niced; cargo does nothing
# when it is up to date. Never the root workspace.
build_null_sink() {
    if [ ! -x "$null_sink" ] || [ -n "$(find bench/null-sink/src bench/null-sink/Cargo.toml \
        bench/null-sink/Cargo.lock -newer "$null_sink" 2>/dev/null)" ]; then
        say "building bench/null-sink (niced)"
        CARGO_TARGET_DIR=$null_sink_target nice -n 19 "${CARGO:-cargo}" build --release --locked \
            --manifest-path bench/null-sink/Cargo.toml >&2
    fi
}

# --- processes -----------------------------------------------------------------------------------

broker_pid=
broker_name=
iperf_pid=
cleanup() {
    stop_broker
    if [ -n "$iperf_pid" ]; then kill "$iperf_pid" 2>/dev/null || true; fi
    rm -rf "$dir/data" "$dir/dd.bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_accepts() {
    python3 - "$1" <<'EOF'
import socket, sys
try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as sock:
        sys.exit(0 if sock.getsockname() != sock.getpeername() else 1)
except OSError:
    sys.exit(1)
EOF
}

# Starts target $1 (flink, null or tansu) on $server_cpus and a fresh data directory; sets
# broker_pid (the target's own process: taskset and the subshells exec it), broker_name and
# bootstrap.
start_broker() {
    local name=$1 port controller_port log=$run/$1.log
    port=$(free_port)
    rm -rf "$dir/data"
    mkdir -p "$dir/data"
    echo "===== start $name on $host:$port, CPUs ${server_cpus:-unpinned}" >>"$log"
    case $name in
        flink)
            controller_port=$(free_port)
            # flink_listeners (NAME://host:port,...) and flink_overrides (--override
            # key=value arguments) add listeners beside PLAINTEXT (bench/security.sh).
            (pinned "$server_cpus" "$dist/bin/flink" server "$dist/config/server.properties" \
                --override "listeners=PLAINTEXT://$host:$port,${flink_listeners:+$flink_listeners,}CONTROLLER://$host:$controller_port" \
                --override "advertised.listeners=PLAINTEXT://$host:$port${flink_listeners:+,$flink_listeners}" \
                --override "controller.quorum.voters=1@$host:$controller_port" \
                --override "log.dirs=$(cd "$dir/data" && pwd)" \
                "${flink_overrides[@]}") >>"$log" 2>&1 </dev/null &
            ;;
        null)
            (pinned "$server_cpus" "$null_sink" --listen "$host:$port" --partitions "$partitions" \
                --record-size "$record_bytes") >>"$log" 2>&1 </dev/null &
            ;;
        tansu)
            # The libsql engine keeps everything in one SQLite file, relative to the working
            # directory: here $dir/data/tansu.db.
            (cd "$dir/data" && pinned "$server_cpus" "$tansu" broker \
                --listener-url "tcp://$host:$port" \
                --advertised-listener-url "tcp://$host:$port" \
                --storage-engine "sqlite://tansu.db") >>"$log" 2>&1 </dev/null &
            ;;
    esac
    broker_pid=$!
    broker_name=$name
    bootstrap=$host:$port
    local deadline=$((SECONDS + 30))
    until port_accepts "$port"; do
        if ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "$name exited during startup; its log, $log:" >&2
            tail -n 30 "$log" >&2
            exit 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "$name did not accept connections on $bootstrap within 30 s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# SIGTERM, then SIGKILL after a grace period (Flink 15 s, to shut down cleanly; tansu and the
# null sink 5 s: their directories are thrown away); only the process started here.
stop_broker() {
    [ -n "$broker_pid" ] || return 0
    kill "$broker_pid" 2>/dev/null || true
    local grace=15
    [ "$broker_name" = flink ] || grace=5
    local deadline=$((SECONDS + grace))
    while kill -0 "$broker_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -9 "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
}

# CPU seconds (user + system, every thread) the running target has used so far.
broker_cpu_seconds() {
    # Fields after "pid (comm) ": state is 1st, utime the 12th, stime the 13th.
    sed 's/.*) //' "/proc/$broker_pid/stat" |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($12 + $13) / hz }'
}

# Runs the client on $client_cpus; its result line goes to $run/results.txt, prefixed with $1
# (labels) and followed by the CPU seconds the target used meanwhile (server_cpu_s) and the
# client's own (client_cpu_s, user + system).
client() {
    local labels=$1 line before after client_cpu
    shift
    before=$(broker_cpu_seconds)
    line=$(pinned_client /usr/bin/time -f '%U %S' -o "$run/client-time.txt" timeout 600 \
        "$bin/rdkafka_bench" "$@" --brokers "$bootstrap" --partitions "$partitions")
    after=$(broker_cpu_seconds)
    client_cpu=$(tail -n 1 "$run/client-time.txt" | awk '{ printf "%.2f", $1 + $2 }')
    line="$labels $line server_cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }') client_cpu_s=$client_cpu"
    echo "   $line" >&2
    echo "$line" >>"$run/results.txt"
}

pinned_client() { (pinned "$client_cpus" "$@"); }

# Creates topic $1 with $partitions partitions on the running target.
create_topic() {
    pinned_client "$bin/rdkafka_bench" create --brokers "$bootstrap" --partitions "$partitions" \
        --topic "$1" >/dev/null
}

# Writes $run/settings.txt ($1, the pinning and the client library), empties
# $run/results.txt, runs the caller's `round N` for each of $rounds rounds, and removes the last
# round's data directory.
run_rounds() {
    {
        echo "$1"
        pinning_note
        "$bin/rdkafka_bench" version | sed 's/^rdkafka_bench //'
    } >"$run/settings.txt"
    : >"$run/results.txt"
    local round
    for round in $(seq 1 "$rounds"); do round "$round"; done
    rm -rf "$dir/data"
}

# The commit measured, with "+ uncommitted changes" when src/ or Cargo.toml differ from it.
bench_commit() {
    local commit
    commit=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
    if [ -z "${BENCH_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no -- src Cargo.toml 2>/dev/null)" ]; then
        commit="$commit + uncommitted changes"
    fi
    echo "$commit"
}
