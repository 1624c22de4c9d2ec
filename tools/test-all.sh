#!/usr/bin/env bash
# The one command that runs every Flowgate test, on a fresh Debian 12 machine
# as root:
#   tools/test-all.sh          lint, unit/fixture/oracle tests, release build, e2e lab tests
#   tools/test-all.sh --quick  everything except the end-to-end lab tests (the lab's own
#                              unit tests, which need no root, still run)
#
# It installs missing build and lab packages (apt-get update once, only if
# something is missing), starts Open vSwitch when it is not running, points
# the rrd crate at librrd (LIBRRD), then runs
#   cargo fmt --check, cargo clippy -D warnings, cargo test, the etcd store's
#   and cluster coordinator's tests against a real etcd (cargo test ...
#   --ignored), the dashboard's JavaScript unit tests (node --test),
#   cargo build --release,
#   the lab's unit tests (scenario files, harness), then installs schemathesis
#   (pinned, in a virtualenv under target/) and runs
#   /usr/bin/python3 -m pytest tests/ -v   (FLOWGATE_BIN = the release binary).
# Any failure exits non-zero; the last line printed is pytest's summary.
#
# Environment: FLOWGATE_LAB_ARTIFACTS (default target/lab-logs) receives the
# controller logs of the e2e run; PYTEST_ARGS adds pytest arguments (e.g. -k restart).
set -euo pipefail

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "test-all.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

# Packages the build and the lab need: librrd (the host-aware module reads
# Ganglia's RRD files; its tests make files with rrdtool), Open vSwitch
# (userspace datapath), Mininet's Python API, Ganglia's daemons, traffic
# tools, pytest and PyYAML (scenario files, the pusher) for Debian's
# /usr/bin/python3, venv for schemathesis (the API contract test), Node.js
# for the dashboard's unit tests, and Chromium with its WebDriver and
# Selenium for the dashboard's browser tests (tests/test_dashboard.py), and
# etcd with etcdctl for the etcd store's tests (they start their own servers
# on loopback ports; the packaged service is not used), openssl for their
# TLS certificates.
PACKAGES=(librrd-dev rrdtool openvswitch-switch mininet ganglia-monitor gmetad iperf3 ethtool
          tcpdump python3-pytest python3-yaml python3-venv netcat-openbsd iputils-ping iproute2
          nodejs chromium chromium-driver python3-selenium etcd-server etcd-client openssl)

install_missing() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        # Any Node.js on PATH will do (18 or newer: node --test).
        [ "$pkg" = nodejs ] && command -v node >/dev/null && continue
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages (${missing[*]}) and not root: install them first" >&2
        exit 1
    fi
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

ovs_running() { ovs-vsctl --timeout=5 show >/dev/null 2>&1 && pgrep -x ovs-vswitchd >/dev/null; }

start_ovs() {
    ovs_running && return 0
    step "starting Open vSwitch"
    # Noise expected here: "Kernel has no loadable module support", ulimit warning.
    /usr/share/openvswitch/scripts/ovs-ctl start --system-id=random --no-monitor </dev/null
    ovs_running || { echo "Open vSwitch did not start" >&2; exit 1; }
}

ensure_rust() {
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        echo "cargo not found: install a Rust toolchain (https://rustup.rs) with rustfmt and clippy" >&2
        exit 1
    fi
    if command -v rustup >/dev/null; then
        cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
        cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
    fi
}

install_missing
start_ovs
ensure_rust
# The rrd crate's pregenerated bindings: no bindgen run, no libclang needed.
if [ -z "${LIBRRD:-}" ]; then
    LIBRRD="$(dpkg -L librrd-dev | grep '/librrd\.so$')"
    export LIBRRD
fi

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

# #[ignore]d in a plain cargo test (they need an etcd binary); here they run.
step "etcd store and cluster coordinator tests against a real etcd (cargo test ... --ignored)"
cargo test -p flowgate-controller --lib store::tests -- --ignored
cargo test -p flowgate-controller --lib cluster::etcd -- --ignored

step "dashboard unit tests (node --test)"
node --test controller/src/api/dashboard/test/logic.test.mjs </dev/null

step "cargo build --release --bin flowgate --bin flowgate-bench"
cargo build --release -p flowgate -p flowgate-bench

step "lab unit tests (scenario files, harness; no root)"
PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -p no:cacheprovider -q \
    tests/test_scenario_files.py tests/test_harness.py </dev/null

if [ "$QUICK" -eq 1 ]; then
    echo "test-all.sh --quick: all checks passed (end-to-end lab tests skipped)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "the end-to-end lab tests need root (network namespaces, Open vSwitch); use --quick" >&2
    exit 1
fi

step "schemathesis for the API contract test (tools/install-schemathesis)"
tools/install-schemathesis

step "end-to-end lab tests"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export FLOWGATE_BIN="$TARGET_DIR/release/flowgate"
export FLOWGATE_LAB_ARTIFACTS="${FLOWGATE_LAB_ARTIFACTS:-$TARGET_DIR/lab-logs}"
export PYTHONDONTWRITEBYTECODE=1
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
exec timeout --kill-after=60 3600 /usr/bin/python3 -m pytest -p no:cacheprovider tests/ -v ${PYTEST_ARGS:-} </dev/null
