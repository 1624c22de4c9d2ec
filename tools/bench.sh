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
# mean of each side's runs (responses per second; Flowgate's flows
# installed per second and responses per packet-in; how evenly the
# switches were served: the slowest switch's rate over the mean) and
# Flowgate's figures as a ratio to the null one, with the range of the
# per-round ratios. Alternating keeps both sides under the same machine
# load: on a shared VM the load drifts over seconds, and two back-to-back
# blocks of runs measured that drift. Scenarios: Flowgate's own packet-ins
# (OpenFlow 1.3, its learn table's miss), then switches shaped like the
# stock tools (`--like cbench`: OpenFlow 1.0, buffered, only desc stats
# answered, packet-ins from the first millisecond; `--like table-miss`:
# OpenFlow 1.3 cookie-0 table misses), each compared with the own shape in
# the same mode. Then 1000 switches connect to a fresh Flowgate (handshake
# time, RSS), and the criterion benches run (codec, reconciler).
#
# Flowgate runs the reactive L2 learning module (forwarding.mode =
# "learning"): flowgate-bench's packet-ins are those of its learn table's
# miss entry. Environment: CARGO_TARGET_DIR, ROUNDS (default 5), LOOPS
# per run (2), DURATION_MS (1000), BENCH_PORT_BASE (16650), BENCH_RT=1 to
# run controller and bench at real-time priority (chrt -f 10, root): far
# steadier figures on a shared VM, but other work on both CPUs gets only
# the kernel's 5 % real-time reserve while it runs. BASELINE=path/to/an/old/
# flowgate adds a run of that binary to every round (null, old, new) and a
# table of old against new: before-and-after figures from one run.
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
# Real-time priority for controller and bench with BENCH_RT=1.
RT=()
if [ "${BENCH_RT:-0}" = 1 ]; then
    RT=(chrt -f 10)
fi
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
    "${RT[@]}" taskset -c 0 "$BENCH" null --listen "127.0.0.1:$NULL_PORT" 2>>"$WORK/null.log" &
    CTL_PID=$!
    PIDS+=("$CTL_PID")
    wait_port "$NULL_PORT"
}
# start_flowgate [BINARY]: the build under test, or BINARY.
start_flowgate() {
    rm -rf "$WORK/data"
    "${RT[@]}" taskset -c 0 "${1:-$FLOWGATE}" --config "$WORK/flowgate.toml" --log warn \
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
    "${RT[@]}" taskset -c 1 "$BENCH" run --controller "127.0.0.1:$port" --label "$label" \
        --loops "$LOOPS" --duration-ms "$DURATION_MS" "$@" | tee -a "$WORK/runs.log" >&2
    grep '^RESULT' "$WORK/runs.log" | tail -1
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
mean() { awk '{ s += $1 } END { printf "%.0f", s / NR }'; }
mean2() { awk '{ s += $1 } END { printf "%.2f", s / NR }'; }
percent() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f", 100 * a / b; else print 0 }'; }

declare -a ROWS OLD_ROWS
declare -A RATIO
# scenario KEY NAME TARGET ARGS... : alternates null and Flowgate runs.
scenario() {
    local key=$1 name=$2 target=$3
    shift 3
    local nulls=() fgs=() flows=() per=() ratios=() nfair=() ffair=() olds=() result
    for _ in $(seq "$ROUNDS"); do
        start_null
        result=$(run null "$NULL_PORT" "$@")
        nulls+=("$(field avg "$result")")
        nfair+=("$(field fairness "$result")")
        stop_controller
        if [ -n "${BASELINE:-}" ]; then
            start_flowgate "$BASELINE"
            result=$(run baseline "$OF_PORT" "$@")
            olds+=("$(field avg "$result")")
            stop_controller
        fi
        start_flowgate
        result=$(run flowgate "$OF_PORT" "$@")
        fgs+=("$(field avg "$result")")
        flows+=("$(field flows "$result")")
        per+=("$(field per_packet_in "$result")")
        ffair+=("$(field fairness "$result")")
        stop_controller
        ratios+=("$(percent "${fgs[-1]}" "${nulls[-1]}")")
    done
    local n f fl spread
    n=$(printf '%s\n' "${nulls[@]}" | mean)
    f=$(printf '%s\n' "${fgs[@]}" | mean)
    fl=$(printf '%s\n' "${flows[@]}" | mean)
    RATIO[$key]=$(percent "$f" "$n")
    spread=$(printf '%s\n' "${ratios[@]}" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s%%", lo, hi }')
    ROWS+=("$(printf '| %-34s | %11s | %11s | %5s%% | %-9s | %11s %5s | %4s | %4s / %4s | %-24s |' "$name" "$n" "$f" \
        "${RATIO[$key]}" "$spread" "$fl" "($(percent "$fl" "$n")%)" "$(printf '%s\n' "${per[@]}" | mean2)" \
        "$(printf '%s\n' "${nfair[@]}" | mean2)" "$(printf '%s\n' "${ffair[@]}" | mean2)" "$target")")
    if [ -n "${BASELINE:-}" ]; then
        local o
        o=$(printf '%s\n' "${olds[@]}" | mean)
        OLD_ROWS+=("$(printf '| %-34s | %11s | %11s | %11s | %5s%% | %5s%% | %+5.1f%% |' "$name" "$n" "$o" "$f" \
            "$(percent "$o" "$n")" "${RATIO[$key]}" "$(awk -v a="$f" -v b="$o" 'BEGIN { print (b > 0 ? 100 * (a / b - 1) : 0) }')")")
    fi
}

OWN=(--switches 16 --macs 1000)
scenario own-tp "throughput, 16 sw x 1000 MACs" ">= 2,000,000/s, >= 25%, fair >= 0.8" --mode throughput "${OWN[@]}"
scenario own-lat "latency, 16 switches" ">= 85%" --mode latency "${OWN[@]}"
scenario own-lat1 "latency, 1 switch" ">= 90%" --mode latency --switches 1 --macs 1000
scenario cbench-tp "cbench-shaped throughput, 16 sw" "own ratio +- 10%" --mode throughput --like cbench "${OWN[@]}"
scenario cbench-lat "cbench-shaped latency, 16 sw" "own ratio +- 10%" --mode latency --like cbench "${OWN[@]}"
scenario miss-tp "1.3 table-miss throughput, 16 sw" "own ratio +- 10%" --mode throughput --like table-miss "${OWN[@]}"
scenario miss-lat "1.3 table-miss latency, 16 sw" "own ratio +- 10%, >= 85%" --mode latency --like table-miss "${OWN[@]}"

start_flowgate
echo "--- flowgate: flowgate-bench scale --switches 1000" >&2
SCALE=$("${RT[@]}" taskset -c 1 "$BENCH" scale --controller "127.0.0.1:$OF_PORT" --switches 1000 \
    --controller-pid "$CTL_PID" --label flowgate | tee -a "$WORK/runs.log" | grep '^RESULT')
stop_controller

echo
echo "Responses per second (flowgate-bench; controller on CPU 0, bench on CPU 1; $ROUNDS rounds"
echo "alternating null and Flowgate, each run $LOOPS loops of $DURATION_MS ms; means of the runs). The null"
echo "responder answers each packet-in with one FLOW_MOD; flows: Flowgate's FLOW_MOD adds per second (and as"
echo "a share of the null's); per pi: Flowgate's responses per packet-in; fair: the slowest switch's rate over"
echo "the mean, null / Flowgate."
echo
printf '| %-34s | %11s | %11s | %6s | %-9s | %-17s | %-6s | %-11s | %-24s |\n' "scenario" "null" "flowgate" "ratio" "per round" "flows" "per pi" "fair" "target"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..13})" \
    "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..11})" \
    "$(printf -- '-%.0s' {1..19})" "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..13})" \
    "$(printf -- '-%.0s' {1..26})"
printf '%s\n' "${ROWS[@]}"
echo
for pair in "cbench-tp own-tp" "cbench-lat own-lat" "miss-tp own-tp" "miss-lat own-lat"; do
    set -- $pair
    echo "$1 vs $2: ${RATIO[$1]}% vs ${RATIO[$2]}% of null (stock-shaped / own: $(awk -v a="${RATIO[$1]}" -v b="${RATIO[$2]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'), target >= 0.90)"
done
if [ -n "${BASELINE:-}" ]; then
    echo
    echo "Old ($BASELINE) against new ($FLOWGATE), same rounds (means):"
    echo
    printf '| %-34s | %11s | %11s | %11s | %6s | %6s | %7s |\n' scenario null old new "old %" "new %" "new/old"
    printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..36})" "$(printf -- '-%.0s' {1..13})" \
        "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..8})" \
        "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..9})"
    printf '%s\n' "${OLD_ROWS[@]}"
fi
echo
echo "1000 switches: handshake $(field handshake_ms "$SCALE") ms (target < 2000), controller RSS $(field rss_mib "$SCALE") MiB (target < 100)"

if [ "$QUICK" -eq 0 ]; then
    echo
    echo "criterion: codec (target >= 5M/s each) and reconciler (target < 1 s for 100 x 1000)"
    (cd "$ROOT" && taskset -c 0 cargo bench -p flowgate-openflow --bench codec 2>&1 | grep -E '^codec|thrpt' | grep -v '^$')
    (cd "$ROOT" && taskset -c 0 cargo bench -p flowgate-controller --features testing --bench reconcile 2>&1 | grep -E '^reconcile|time:')
fi
