#!/usr/bin/env bash
# The same message exchange the way LSL scripters do it today, one HTTP/1.1
# keep-alive POST per message (bench/rust/src/bin/longpoll_server.rs, the
# cheapest possible HTTP-in: 200 with Content-Type and Content-Length only),
# against the WebSocket path (the tokio adapter's echo_server example), both
# servers on a one-thread tokio runtime, both
# driven by the same load generator: CONNS connections in a closed loop,
# SIZE-byte messages, SECS seconds per run after 1 s of warm-up, the two
# servers taking turns ROUNDS times.
#
# Two long-poll clients: the minimal request (Host, Content-Type,
# Content-Length: the cheapest case for HTTP, used for the ratio line) and
# longpoll-browser, with the headers Chromium's fetch() sends.
#
# Bytes on the wire per message each way are counted by the load generator:
# what it writes (client → server) and what it reads (exactly what the
# server wrote), TCP/IP headers not included (both paths send one segment
# per message each way on loopback).
#
#   bench/longpoll.sh [--secs 10] [--conns 100] [--size 64] [--rounds 2]
#
# Last line: ratio websocket/longpoll round-trips-per-s=<x> bytes-per-message=<y>
set -euo pipefail

SECS=10 CONNS=100 SIZE=64 ROUNDS=2 THREADS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--rounds R] [--threads T]" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
bench_setup
ulimit -n "$(( $(ulimit -Hn) < 4096 ? $(ulimit -Hn) : 4096 ))" 2>/dev/null || true

echo "longpoll: building (release)"
build_all --no-node
CLK_TCK=$(getconf CLK_TCK)

# start_server NAME: sets SERVER_PID and SERVER_URL.
start_server() {
    local name=$1 out=$WORK/$1.out
    : > "$out"
    case "$name" in
        websocket)
            "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 --handshakes-per-second 1000000 \
                < /dev/null > "$out" 2> "$WORK/$name.err" &
            ;;
        # One thread, as the echo_server example runs, so the two differ in protocol only.
        longpoll*) "$BIN/longpoll_server" --bind 127.0.0.1:0 --current-thread > "$out" 2> "$WORK/$name.err" & ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        case "$name" in
            websocket) SERVER_URL=$(awk '$1 == "object-url" { print $2; exit }' "$out") ;;
            # The path an HTTP-in URL has: a capability.
            longpoll*) SERVER_URL=$(awk '$1 == "listening" { print "http://" $2 "/cap/0f6c1b8e-4a4e-4f8a-9c55-6a9b3d7e2f10/"; exit }' "$out") ;;
        esac
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    echo "longpoll: $name did not start:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

TSV=$RESULTS/longpoll.tsv
echo "# path round round_trips_per_s p50_us p99_us client_bytes server_bytes setup_client setup_server cpu_us_per_msg" > "$TSV"
for round in $(seq "$ROUNDS"); do
    for name in longpoll longpoll-browser websocket; do
        echo "longpoll: round $round/$ROUNDS: $name, $CONNS connections, ${SECS} s"
        start_server "$name"
        sleep 0.3
        mode=(ws)
        [ "$name" = longpoll ] && mode=(http)
        [ "$name" = longpoll-browser ] && mode=(http --browser-headers)
        timeout $((SECS + 40)) "$BIN/loadgen" "${mode[@]}" --url "$SERVER_URL" --conns "$CONNS" --secs "$SECS" \
            --size "$SIZE" --threads "$THREADS" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out"
        stop_server
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        echo "$name $round $(get rate) $(get p50_us) $(get p99_us) $(get client_bytes_per_msg) $(get server_bytes_per_msg)" \
            "$(get setup_client_bytes) $(get setup_server_bytes) $(get server_cpu_us_per_msg)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "longpoll:   %.0f round trips/s, p99 %s us, %s + %s bytes per message\n", $3, $5, $6, $7 }'
    done
done

echo
echo "## HTTP long-poll vs WebSocket: $CONNS connections, closed loop, $SIZE B messages, ${SECS} s per run"
echo
echo "| path | round | round trips/s | p50 µs | p99 µs | server CPU µs/msg | bytes client→server | bytes server→client | bytes per message (both ways) |"
echo "|---|---|---|---|---|---|---|---|---|"
grep -v '^#' "$TSV" | awk '{ printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $10, $6, $7, $6 + $7 }'
echo
echo "Once per connection (not per message): WebSocket handshake $(grep '^websocket' "$TSV" | head -1 | awk '{ printf "%s B request + %s B response", $8, $9 }');"
echo "HTTP keep-alive has no setup exchange beyond TCP."
echo
mean() { grep -v '^#' "$TSV" | awk -v n="$1" -v f="$2" '$1 == n { s += $f; k++ } END { printf "%.2f", s / k }'; }
ws_rate=$(mean websocket 3) lp_rate=$(mean longpoll 3)
ws_bytes=$(grep '^websocket' "$TSV" | head -1 | awk '{ print $6 + $7 }')
lp_bytes=$(grep '^longpoll' "$TSV" | head -1 | awk '{ print $6 + $7 }')
br_rate=$(mean longpoll-browser 3)
br_bytes=$(grep '^longpoll-browser' "$TSV" | head -1 | awk '{ print $6 + $7 }')
awk -v a="$ws_rate" -v b="$br_rate" -v c="$ws_bytes" -v d="$br_bytes" \
    'BEGIN { printf "with browser request headers: websocket/longpoll-browser round-trips-per-s=%.2f bytes-per-message=%.2f\n", a / b, c / d }'
awk -v a="$ws_rate" -v b="$lp_rate" -v c="$ws_bytes" -v d="$lp_bytes" \
    'BEGIN { printf "ratio websocket/longpoll round-trips-per-s=%.2f bytes-per-message=%.2f\n", a / b, c / d }'
