#!/usr/bin/env bash
# Line clients (SPEC §13) against WebSocket clients on the same echo_server
# (the tokio adapter's example, object-scope URL), over 127.0.0.1, one load
# generator (bench/rust loadgen, modes `lines` and `ws`): CONNS connections
# in a closed loop (send SIZE bytes, await the echo) for SECS seconds after
# 1 s of warm-up, one fresh server per transport, one run each. Reported:
# messages/s, p50 and p99 round trip, server CPU per message (utime+stime
# from /proc/<pid>/stat at the window's edges) and the server's share of a core.
#
#   bench/lines.sh [--secs 10] [--conns 100] [--size 64] [--threads 1] [common flags, bench/lib.sh]
#
# Writes OUT/lines.tsv (--keep: bench/results/lines.tsv). Last line:
# ratio lines/websocket msgs-per-s=<x> cpu-per-message=<y>
set -euo pipefail
ARGS=("$@")

SECS=10 CONNS=100 SIZE=64 THREADS=1
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--threads T] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup lines "${ARGS[@]}"
echo "lines: building (release)"
build_all --no-node
CLK_TCK=$(getconf CLK_TCK)

start_server() {
    local out=$WORK/server.out
    : > "$out"
    "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 \
        --sessions-per-url $((CONNS + 100)) --handshakes-per-second 1000000 \
        < /dev/null > "$out" 2> "$WORK/server.err" &
    SERVER_PID=$!
    SERVER_URL=""
    for _ in $(seq 100); do
        SERVER_URL=$(awk '$1 == "object-url" { print $2; exit }' "$out")
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    echo "lines: echo_server did not start:" >&2
    cat "$WORK/server.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

bench_quiet
TSV=$RESULTS/lines.tsv
keep "$TSV"
echo "# transport msgs_per_s p50_us p99_us server_cpu_us_per_msg server_cpu_pct client_cpu_pct errors" > "$TSV"
for transport in lines websocket; do
    mode=ws
    [ "$transport" = lines ] && mode=lines
    echo "lines: $transport, $CONNS connections, ${SIZE} B, ${SECS} s"
    start_server
    sleep 0.3
    timeout $((SECS + 40)) "$BIN/loadgen" "$mode" --url "$SERVER_URL" --conns "$CONNS" --secs "$SECS" \
        --size "$SIZE" --threads "$THREADS" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out"
    stop_server
    get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
    printf '%s %s %s %s %s %s %s %s\n' "$transport" "$(get rate)" "$(get p50_us)" "$(get p99_us)" \
        "$(get server_cpu_us_per_msg)" "$(get server_cpu_pct)" "$(get client_cpu_pct)" "$(get errors)" >> "$TSV"
done

bench_done
echo
awk 'BEGIN { printf "%-10s %12s %8s %8s %16s %12s %8s\n", "transport", "msgs/s", "p50 us", "p99 us", "server us CPU/msg", "server core%", "errors" }
     !/^#/ { printf "%-10s %12.0f %8s %8s %16s %12s %8s\n", $1, $2, $3, $4, $5, $6, $8 }' "$TSV"
awk '!/^#/ { rate[$1] = $2; cpu[$1] = $5 }
     END { printf "'"$REPORT_PREFIX"'ratio lines/websocket msgs-per-s=%.3f cpu-per-message=%.3f\n", rate["lines"] / rate["websocket"], cpu["lines"] / cpu["websocket"] }' "$TSV"
