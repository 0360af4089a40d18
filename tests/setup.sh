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
# the other nodes in the chaos test (tests/integration/chaos.py).
packages=(build-essential kcat procps busybox-static util-linux iptables)
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
