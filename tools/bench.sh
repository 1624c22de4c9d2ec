#!/usr/bin/env bash
# Flow-setup benchmark: Flowgate and the null controller side by side, in
# one run, on this machine.
#
#   tools/bench.sh [--no-build] [--quick]
#
# The controller under test runs pinned to CPU 0, flowgate-bench to CPU 1
# (taskset). Each scenario alternates, in ROUNDS rounds, a run against the
# null controller (the smallest possible responder: what the machine and
# the tool allow) and one against a fresh Flowgate; the table gives the
# mean of each side's runs and Flowgate's figure as a ratio to the null
# one, with the range of the per-round ratios. Alternating keeps both
# sides under the same machine load: on a shared VM the load drifts over
# seconds, and two back-to-back blocks of runs measured that drift. Then 1000 switches connect to a fresh Flowgate
# (handshake time, RSS), and the criterion benches run (codec, reconciler).
#
# Flowgate runs the reactive L2 learning module (forwarding.mode =
# "learning"): flowgate-bench's packet-ins are those of its learn table's
# miss entry. Environment: CARGO_TARGET_DIR, ROUNDS (default 5), LOOPS
# per run (2), DURATION_MS (1000), BENCH_PORT_BASE (16650).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
FLOWGATE="$TARGET/release/flowgate"
BENCH="$TARGET/release/flowgate-bench"
ROUNDS="${ROUNDS:-5}"
LOOPS="${LOOPS:-2}"
DURATION_MS="${DURATION_MS:-1000}"
BASE="${BENCH_PORT_BASE:-16650}"
BUILD=1
QUICK=0
for arg in "$@"; do
    case "$arg" in
        --no-build) BUILD=0 ;;
        --quick) QUICK=1; ROUNDS=2 ;;
        *) echo "usage: $0 [--no-build] [--quick]" >&2; exit 2 ;;
    esac
done

if [ "$(nproc)" -lt 2 ]; then
    echo "bench.sh needs 2 CPUs (controller on one, bench on the other)" >&2
    exit 1
fi
if [ "$BUILD" -eq 1 ]; then
    (cd "$ROOT" && cargo build --release -p flowgate -p flowgate-bench)
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/flowgate-bench.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
printf '[forwarding]\nmode = "learning"\n' >"$WORK/flowgate.toml"

NULL_PORT=$BASE
OF_PORT=$((BASE + 1))
REST_PORT=$((BASE + 2))
OVSDB_ARGS=()
if "$FLOWGATE" --help 2>&1 | grep -q -- --ovsdb-listen; then
    OVSDB_ARGS=(--ovsdb-listen "127.0.0.1:$((BASE + 3))")
fi

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# Starts a controller on CPU 0; sets CTL_PID.
start_null() {
    taskset -c 0 "$BENCH" null --listen "127.0.0.1:$NULL_PORT" 2>>"$WORK/null.log" &
    CTL_PID=$!
    PIDS+=("$CTL_PID")
    wait_port "$NULL_PORT"
}
start_flowgate() {
    rm -rf "$WORK/data"
    taskset -c 0 "$FLOWGATE" --config "$WORK/flowgate.toml" --log warn \
        --openflow-listen "127.0.0.1:$OF_PORT" --rest-listen "127.0.0.1:$REST_PORT" \
        --data-dir "$WORK/data" "${OVSDB_ARGS[@]}" 2>>"$WORK/flowgate.log" &
    CTL_PID=$!
    PIDS+=("$CTL_PID")
    wait_port "$OF_PORT"
}
stop_controller() {
    kill "$CTL_PID" 2>/dev/null || true
    wait "$CTL_PID" 2>/dev/null || true
}

# run LABEL PORT ARGS... : prints the bench's output, keeps its RESULT line.
run() {
    local label=$1 port=$2
    shift 2
    echo "--- $label: flowgate-bench run $*" >&2
    taskset -c 1 "$BENCH" run --controller "127.0.0.1:$port" --label "$label" \
        --loops "$LOOPS" --duration-ms "$DURATION_MS" "$@" | tee -a "$WORK/runs.log" >&2
    grep '^RESULT' "$WORK/runs.log" | tail -1
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

declare -a ROWS
scenario() {
    local name=$1 target=$2
    shift 2
    local nulls=() fgs=() ratios=() result
    for _ in $(seq "$ROUNDS"); do
        start_null
        result=$(run null "$NULL_PORT" "$@")
        nulls+=("$(field avg "$result")")
        stop_controller
        start_flowgate
        result=$(run flowgate "$OF_PORT" "$@")
        fgs+=("$(field avg "$result")")
        stop_controller
        ratios+=("$(awk -v a="${fgs[-1]}" -v b="${nulls[-1]}" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print 0 }')")
    done
    local n f
    n=$(printf '%s\n' "${nulls[@]}" | awk '{ s += $1 } END { printf "%.0f", s / NR }')
    f=$(printf '%s\n' "${fgs[@]}" | awk '{ s += $1 } END { printf "%.0f", s / NR }')
    local spread
    spread=$(printf '%s\n' "${ratios[@]}" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s%%", lo, hi }')
    ROWS+=("$(printf '| %-32s | %12s | %12s | %6s | %-9s | %-26s |' "$name" "$n" "$f" \
        "$(awk -v a="$f" -v b="$n" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "-" }')" \
        "$spread" "$target")")
}

scenario "throughput, 16 sw x 1000 MACs" ">= 2,000,000/s and >= 25%" --mode throughput --switches 16 --macs 1000
scenario "latency, 16 switches" ">= 85%" --mode latency --switches 16 --macs 1000
scenario "latency, 1 switch" ">= 90%" --mode latency --switches 1 --macs 1000

start_flowgate
echo "--- flowgate: flowgate-bench scale --switches 1000" >&2
SCALE=$(taskset -c 1 "$BENCH" scale --controller "127.0.0.1:$OF_PORT" --switches 1000 \
    --controller-pid "$CTL_PID" --label flowgate | tee -a "$WORK/runs.log" | grep '^RESULT')
stop_controller

echo
echo "Flow-setup responses per second (flowgate-bench; controller on CPU 0, bench on CPU 1;"
echo "$ROUNDS rounds alternating null and Flowgate, each run $LOOPS loops of $DURATION_MS ms; means of the runs)"
echo
printf '| %-32s | %12s | %12s | %6s | %-9s | %-26s |\n' "scenario" "null" "flowgate" "ratio" "per round" "target"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..34})" "$(printf -- '-%.0s' {1..14})" \
    "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..11})" "$(printf -- '-%.0s' {1..28})"
printf '%s\n' "${ROWS[@]}"
echo
echo "1000 switches: handshake $(field handshake_ms "$SCALE") ms (target < 2000), controller RSS $(field rss_mib "$SCALE") MiB (target < 100)"

if [ "$QUICK" -eq 0 ]; then
    echo
    echo "criterion: codec (target >= 5M/s each) and reconciler (target < 1 s for 100 x 1000)"
    (cd "$ROOT" && taskset -c 0 cargo bench -p flowgate-openflow --bench codec 2>&1 | grep -E '^codec|thrpt' | grep -v '^$')
    (cd "$ROOT" && taskset -c 0 cargo bench -p flowgate-controller --features testing --bench reconcile 2>&1 | grep -E '^reconcile|time:')
fi
