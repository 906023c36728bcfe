#!/usr/bin/env bash
# The same message exchange over this crate's own two paths, in one server
# process with one script: the echo_server example's HTTP-in URL (its
# `http-url`, the way LSL scripters exchange messages today: one HTTP/1.1
# keep-alive POST per message, the script answering each with
# llHTTPResponse(id, 200, body)) against its WebSocket URL (`object-url`,
# the script echoing each text with llWebsocketSend). Both are served by the
# same core on the same port, on the same one-thread tokio runtime, and
# driven by the same load generator (bench/rust/src/bin/loadgen.rs): CONNS
# connections in a closed loop, SIZE-byte messages, SECS seconds per run
# after 1 s of warm-up. Each round starts one echo_server and runs the three
# clients against it in turn (the order alternating between rounds).
#
# Clients: `http-in` sends the minimal request (Host, Content-Type,
# Content-Length: the cheapest case for HTTP, used for the ratio line);
# `http-in-browser` the headers Chromium's fetch() sends; `websocket` one
# masked text frame per message.
#
# Bytes on the wire per message each way are counted by the load generator:
# what it writes (client → server) and what it reads (exactly what the
# server wrote), TCP/IP headers not included (both paths send one segment
# per message each way on loopback). Server CPU per message: utime + stime
# of /proc/<pid>/stat over the measured window, divided by the messages.
#
# Everything runs on loopback: the server binds 127.0.0.1; the load
# generator connects to it from 127.0.0.2 … 127.0.0.51 in turn, and the
# server's --handshakes-per-second is raised so that no request is
# answered 429 (HTTP-in requests count against that limit too).
#
#   bench/longpoll.sh [--secs 10] [--conns 100] [--size 64] [--rounds 2]
#
# Last line: ratio websocket/http-in round-trips-per-s=<x> bytes-per-message=<y> cpu-per-message=<z>
set -euo pipefail
ARGS=("$@")

SECS=10 CONNS=100 SIZE=64 ROUNDS=2 THREADS=1
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--rounds R] [--threads T] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup longpoll "${ARGS[@]}"
ulimit -n "$(( $(ulimit -Hn) < 4096 ? $(ulimit -Hn) : 4096 ))" 2>/dev/null || true

echo "longpoll: building (release)"
build_all --no-node
CLK_TCK=$(getconf CLK_TCK)

# start_server: one echo_server; sets SERVER_PID, HTTP_URL and WS_URL.
start_server() {
    local out=$WORK/server.out
    : > "$out"
    "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 --handshakes-per-second 1000000 \
        < /dev/null > "$out" 2> "$WORK/server.err" &
    SERVER_PID=$!
    HTTP_URL="" WS_URL=""
    for _ in $(seq 100); do
        HTTP_URL=$(awk '$1 == "http-url" { u = $2 } END { print u }' "$out")
        WS_URL=$(awk '$1 == "object-url" { u = $2 } END { print u }' "$out")
        [ -n "$HTTP_URL" ] && [ -n "$WS_URL" ] && return 0
        sleep 0.1
    done
    echo "longpoll: echo_server did not print its URLs:" >&2
    cat "$WORK/server.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

bench_quiet
TSV=$RESULTS/longpoll-httpin.tsv
keep "$TSV"
echo "# path round round_trips_per_s p50_us p99_us client_bytes server_bytes setup_client setup_server cpu_us_per_msg errors" > "$TSV"
for round in $(seq "$ROUNDS"); do
    start_server
    sleep 0.3
    order=(http-in http-in-browser websocket)
    [ $((round % 2)) -eq 0 ] && order=(websocket http-in-browser http-in)
    for name in "${order[@]}"; do
        echo "longpoll: round $round/$ROUNDS: $name, $CONNS connections, ${SECS} s (echo_server pid $SERVER_PID)"
        case "$name" in
            http-in) mode=(http --url "$HTTP_URL") ;;
            http-in-browser) mode=(http --browser-headers --url "$HTTP_URL") ;;
            websocket) mode=(ws --url "$WS_URL") ;;
        esac
        timeout $((SECS + 40)) "$BIN/loadgen" "${mode[@]}" --conns "$CONNS" --secs "$SECS" \
            --size "$SIZE" --threads "$THREADS" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out"
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        echo "$name $round $(get rate) $(get p50_us) $(get p99_us) $(get client_bytes_per_msg) $(get server_bytes_per_msg)" \
            "$(get setup_client_bytes) $(get setup_server_bytes) $(get server_cpu_us_per_msg) $(get errors)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "longpoll:   %.0f round trips/s, p99 %s us, %s + %s bytes per message, %s us server CPU per message, %s errors\n", $3, $5, $6, $7, $10, $11 }'
        sleep 0.5
    done
    stop_server
done

bench_done
echo
echo "## HTTP-in long-poll vs WebSocket on one echo_server: $CONNS connections, closed loop, $SIZE B messages, ${SECS} s per run"
echo
echo "| path | round | round trips/s | p50 µs | p99 µs | server CPU µs/msg | bytes client→server | bytes server→client | bytes per message (both ways) | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
grep -v '^#' "$TSV" | sort -s -k1,1 | awk '{ printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $10, $6, $7, $6 + $7, $11 }'
echo
echo "Once per connection (not per message): WebSocket handshake $(grep '^websocket' "$TSV" | head -1 | awk '{ printf "%s B request + %s B response", $8, $9 }');"
echo "HTTP keep-alive has no setup exchange beyond TCP."
echo
mean() { grep -v '^#' "$TSV" | awk -v n="$1" -v f="$2" '$1 == n { s += $f; k++ } END { printf "%.4f", s / k }'; }
bytes() { grep "^$1 " "$TSV" | head -1 | awk '{ print $6 + $7 }'; }
ws_rate=$(mean websocket 3) hi_rate=$(mean http-in 3) br_rate=$(mean http-in-browser 3)
ws_cpu=$(mean websocket 10) hi_cpu=$(mean http-in 10) br_cpu=$(mean http-in-browser 10)
ws_bytes=$(bytes websocket) hi_bytes=$(bytes http-in) br_bytes=$(bytes http-in-browser)
awk -v a="$ws_rate" -v b="$br_rate" -v c="$ws_bytes" -v d="$br_bytes" -v e="$ws_cpu" -v f="$br_cpu" \
    'BEGIN { printf "with browser request headers: websocket/http-in-browser round-trips-per-s=%.2f bytes-per-message=%.2f cpu-per-message=%.2f\n", a / b, c / d, e / f }'
awk -v a="$ws_rate" -v b="$hi_rate" -v c="$ws_bytes" -v d="$hi_bytes" -v e="$ws_cpu" -v f="$hi_cpu" \
    'BEGIN { printf "'"$REPORT_PREFIX"'ratio websocket/http-in round-trips-per-s=%.2f bytes-per-message=%.2f cpu-per-message=%.2f\n", a / b, c / d, e / f }'
