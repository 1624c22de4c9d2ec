#!/usr/bin/env bash
# Build and run the Flowgate controller, on a fresh Debian 12 machine with a
# Rust toolchain:
#   tools/run.sh [FLOWGATE ARGUMENTS...]     e.g. tools/run.sh --config flowgate.toml
#
# The build links librrd (Ganglia's RRD files, read by the host-aware module).
# As root this installs librrd-dev when it is missing (apt-get, about 10 s),
# then points the rrd crate at the library (LIBRRD) so that it uses its
# pregenerated bindings and needs no libclang, and runs
#   cargo run --release --bin flowgate -- ARGUMENTS
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! dpkg-query -W -f='${Status}' librrd-dev 2>/dev/null | grep -q "install ok installed"; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: librrd-dev is missing and this is not root: apt-get install librrd-dev" >&2
        exit 1
    fi
    echo "run.sh: installing librrd-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends librrd-dev </dev/null >&2
fi
if [ -z "${LIBRRD:-}" ]; then
    LIBRRD="$(dpkg -L librrd-dev | grep '/librrd\.so$')"
    export LIBRRD
fi
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
exec cargo run --release --bin flowgate -- "$@"
