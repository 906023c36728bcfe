#!/usr/bin/env bash
# SPEC §14's fallback against WebSocket on one echo_server (the tokio
# adapter's example, its object-scope URL, one script echoing every text to
# its session): `websocket` clients (one masked text frame per message) and
# `sse` clients (an EventSource-style GET stream on the same URL plus one
# keep-alive POST per message to the stream's send URL, the echo coming back
# as an event), driven by the same load generator (bench/rust/src/bin/loadgen.rs)
# in a closed loop: CONNS clients, SIZE-byte messages, SECS seconds per run
# after 1 s of warm-up, the two kinds taking turns on the same server process
# (order alternating between rounds).
#
# Every POST counts against the per-address handshake rate limit, so the
# server's --handshakes-per-second is raised; clients come from 127.0.0.2 …
# 127.0.0.51. The script's queue holds 64 events and a POST past it is
# answered 503, so CONNS is at most 64 (each SSE client has one POST in
# flight); the load generator retries a 503 after 1 ms and reports how many.
# Server CPU per message: utime + stime of /proc/<pid>/stat over the window.
# 127.0.0.1 only; each run is bounded by timeout.
#
#   bench/sse.sh [--secs 5] [--conns 50] [--size 64] [--rounds 1]
#
# Last line: ratio sse/websocket msgs-per-s=<x> cpu-per-message=<y>
set -euo pipefail
ARGS=("$@")

SECS=5 CONNS=50 SIZE=64 ROUNDS=1
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--rounds R] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
if [ "$CONNS" -gt 64 ]; then
    echo "sse: at most 64 clients (the script's queue is 64 events; more POSTs get 503)" >&2
    exit 2
fi

bench_setup sse "${ARGS[@]}"

echo "sse: building (release)"
build_all --no-node
CLK_TCK=$(getconf CLK_TCK)

start_server() {
    local out=$WORK/server.out
    : > "$out"
    "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 --handshakes-per-second 10000000 \
        < /dev/null > "$out" 2> "$WORK/server.err" &
    SERVER_PID=$!
    WS_URL=""
    for _ in $(seq 100); do
        WS_URL=$(awk '$1 == "object-url" { u = $2 } END { print u }' "$out")
        [ -n "$WS_URL" ] && return 0
        sleep 0.1
    done
    echo "sse: echo_server did not print its URLs:" >&2
    cat "$WORK/server.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

bench_quiet
TSV=$RESULTS/sse.tsv
keep "$TSV"
echo "# client round msgs_per_s p50_us p99_us client_bytes server_bytes cpu_us_per_msg server_cpu_pct errors retries" > "$TSV"
for round in $(seq "$ROUNDS"); do
    start_server
    sleep 0.3
    order=(websocket sse)
    [ $((round % 2)) -eq 0 ] && order=(sse websocket)
    for name in "${order[@]}"; do
        echo "sse: round $round/$ROUNDS: $name, $CONNS clients, ${SECS} s (echo_server pid $SERVER_PID)"
        mode=ws
        [ "$name" = sse ] && mode=sse
        timeout $((SECS + 40)) "$BIN/loadgen" "$mode" --url "$WS_URL" --conns "$CONNS" --secs "$SECS" \
            --size "$SIZE" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out"
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        echo "$name $round $(get rate) $(get p50_us) $(get p99_us) $(get client_bytes_per_msg) $(get server_bytes_per_msg)" \
            "$(get server_cpu_us_per_msg) $(get server_cpu_pct) $(get errors) $(get retries)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "sse:   %.0f msg/s, p99 %s us, %s us server CPU per message, %s errors, %s retries\n", $3, $5, $8, $10, $11 }'
        sleep 0.5
    done
    stop_server
done

bench_done
echo
echo "## SSE + POST vs WebSocket on one echo_server: $CONNS clients, closed loop, $SIZE B messages, ${SECS} s per run"
echo
echo "| client | round | messages/s | p50 µs | p99 µs | server CPU µs/msg | server CPU % | bytes client→server | bytes server→client | errors | 503 retries |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
grep -v '^#' "$TSV" | sort -s -k1,1 | awk '{ printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $8, $9, $6, $7, $10, $11 }'
echo
mean() { grep -v '^#' "$TSV" | awk -v n="$1" -v f="$2" '$1 == n { s += $f; k++ } END { printf "%.4f", s / k }'; }
awk -v a="$(mean sse 3)" -v b="$(mean websocket 3)" -v c="$(mean sse 8)" -v d="$(mean websocket 8)" \
    'BEGIN { printf "'"$REPORT_PREFIX"'ratio sse/websocket msgs-per-s=%.2f cpu-per-message=%.2f\n", a / b, c / d }'
