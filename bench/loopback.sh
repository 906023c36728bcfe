#!/usr/bin/env bash
# Three WebSocket echo servers over 127.0.0.1, one load generator:
#
#   lsl                the tokio adapter's echo_server example (object-scope URL;
#                      its default current-thread runtime)
#   tokio-tungstenite  bench/rust/src/bin/tt_echo_server.rs (4 KiB read/write
#                      buffers; multi-thread runtime, as #[tokio::main] gives)
#   ws                 Node's ws (bench/node/ws_echo.js, versions from package-lock.json)
# and, for a like-for-like view of the runtime flavour, lsl-2threads
# (echo_server --worker-threads 2) and tokio-tungstenite-1thread
# (tt_echo_server --current-thread) in the load phase.
#
# Load phase: CONNS connections in a closed loop (send SIZE bytes, await the
# echo) for SECS seconds after 1 s of warm-up; the servers take turns, ROUNDS
# times, each started fresh. Reported per run: messages/s, p50 and p99 round
# trip, server CPU per message (utime+stime from /proc/<pid>/stat at the
# window's edges) and the server's share of a core.
# Idle phase: IDLE connections held against each fresh server; its RSS
# before and with them (VmRSS), and the difference per connection.
#
#   bench/loopback.sh [--secs 10] [--conns 100] [--size 64] [--rounds 2] [--idle 10000]
#
# Writes bench/results/loopback.tsv and bench/loopback.png (plotters).
# Last line: ratio lsl/ws msgs-per-s=<x> lsl/tokio-tungstenite msgs-per-s=<y>
set -euo pipefail

SECS=10 CONNS=100 SIZE=64 ROUNDS=2 IDLE=10000 HOLD=6 THREADS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--rounds R] [--idle N] [--threads T]" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
bench_setup

# Every idle connection is a descriptor in the server and one in the load generator.
need=$((IDLE + 1000))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "loopback: the hard descriptor limit is $hard; $need are needed (lower --idle)" >&2
    exit 1
fi
ulimit -n "$need"

echo "loopback: building (release)"
build_all

CLK_TCK=$(getconf CLK_TCK)

# start_server NAME: starts it with stdout in $WORK/NAME.out; sets SERVER_PID and SERVER_URL.
start_server() {
    local name=$1 out=$WORK/$1.out
    : > "$out"
    case "$name" in
        lsl | lsl-2threads)
            local threads=()
            [ "$name" = lsl-2threads ] && threads=(--worker-threads 2)
            "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 "${threads[@]}" \
                --sessions-per-url $((IDLE + 1000)) --handshakes-per-second 1000000 \
                < /dev/null > "$out" 2> "$WORK/$name.err" &
            ;;
        tokio-tungstenite) "$BIN/tt_echo_server" --bind 127.0.0.1:0 > "$out" 2> "$WORK/$name.err" & ;;
        tokio-tungstenite-1thread)
            "$BIN/tt_echo_server" --bind 127.0.0.1:0 --current-thread > "$out" 2> "$WORK/$name.err" &
            ;;
        ws) node "$ROOT/bench/node/ws_echo.js" 0 > "$out" 2> "$WORK/$name.err" & ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        case "$name" in
            lsl*) SERVER_URL=$(awk '$1 == "object-url" { print $2; exit }' "$out") ;;
            *) SERVER_URL=$(awk '$1 == "listening" { print "ws://" $2 "/"; exit }' "$out") ;;
        esac
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    echo "loopback: $name did not start:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

SERVERS="lsl lsl-2threads tokio-tungstenite tokio-tungstenite-1thread ws"
IDLE_SERVERS="lsl tokio-tungstenite ws"
TSV=$RESULTS/loopback.tsv
echo "# server round msgs_per_s p50_us p99_us server_cpu_us_per_msg server_cpu_pct client_cpu_pct errors" > "$TSV"
for round in $(seq "$ROUNDS"); do
    for name in $SERVERS; do
        echo "loopback: round $round/$ROUNDS: $name, $CONNS connections, ${SECS} s"
        start_server "$name"
        sleep 0.3
        timeout $((SECS + 40)) "$BIN/loadgen" ws --url "$SERVER_URL" --conns "$CONNS" --secs "$SECS" \
            --size "$SIZE" --threads "$THREADS" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out"
        stop_server
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        printf '%s %s %s %s %s %s %s %s %s\n' "$name" "$round" "$(get rate)" "$(get p50_us)" "$(get p99_us)" \
            "$(get server_cpu_us_per_msg)" "$(get server_cpu_pct)" "$(get client_cpu_pct)" "$(get errors)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "loopback:   %.0f msg/s, p50 %s us, p99 %s us, server %s us CPU/msg (%s%% of a core), client %s%%, errors %s\n", $3, $4, $5, $6, $7, $8, $9 }'
    done
done

IDLE_TSV=$RESULTS/loopback-idle.tsv
echo "# server connections rss_before_kib rss_with_kib bytes_per_conn alive" > "$IDLE_TSV"
for name in $IDLE_SERVERS; do
    echo "loopback: idle: $IDLE connections to $name"
    start_server "$name"
    sleep 1
    before=$(rss_kb "$SERVER_PID")
    timeout 180 "$BIN/loadgen" idle --url "$SERVER_URL" --conns "$IDLE" --hold "$HOLD" > "$WORK/idle.out" &
    gen=$!
    ready=""
    for _ in $(seq 1500); do
        ready=$(awk '$1 == "ready" { print $2; exit }' "$WORK/idle.out")
        [ -n "$ready" ] && break
        kill -0 "$gen" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2 # let the server settle
    with=$(rss_kb "$SERVER_PID")
    wait "$gen" || true
    alive=$(awk '$1 == "alive" { print $2 }' "$WORK/idle.out")
    stop_server
    echo "$name ${ready:-0} $before $with $(( (with - before) * 1024 / (${ready:-0} > 0 ? ${ready:-1} : 1) )) ${alive:-0}" >> "$IDLE_TSV"
    tail -1 "$IDLE_TSV" | awk '{ printf "loopback:   %s connected, RSS %.1f MiB -> %.1f MiB, %s B per connection, %s alive after the hold\n", $2, $3/1024, $4/1024, $5, $6 }'
done

"$BIN/plot" "$TSV" "$ROOT/bench/loopback.png" \
    "Echo over 127.0.0.1: $CONNS connections, ${SIZE} B, closed loop, $(nproc) cores"

echo
echo "## Loopback: $CONNS connections, closed loop, $SIZE B messages, ${SECS} s per run"
echo
echo "| server | round | messages/s | p50 µs | p99 µs | server CPU µs/msg | server CPU % | load generator CPU % |"
echo "|---|---|---|---|---|---|---|---|"
grep -v '^#' "$TSV" | awk '{ printf "| %s | %s | %.0f | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
echo
echo "| server | mean messages/s | mean p99 µs | mean CPU µs/msg |"
echo "|---|---|---|---|"
for name in $SERVERS; do
    grep -v '^#' "$TSV" | awk -v n="$name" '$1 == n { r += $3; p += $5; c += $6; k++ }
        END { printf "| %s | %.0f | %.0f | %.2f |\n", n, r / k, p / k, c / k }'
done
echo
echo "## Idle: $IDLE connections held"
echo
echo "| server | connected | RSS before MiB | RSS with them MiB | bytes per connection |"
echo "|---|---|---|---|---|"
grep -v '^#' "$IDLE_TSV" | awk '{ printf "| %s | %s | %.1f | %.1f | %s |\n", $1, $2, $3/1024, $4/1024, $5 }'
echo
mean() { grep -v '^#' "$TSV" | awk -v n="$1" '$1 == n { r += $3; k++ } END { printf "%.1f", r / k }'; }
lsl=$(mean lsl) ws=$(mean ws) tt=$(mean tokio-tungstenite)
lsl2=$(mean lsl-2threads) tt1=$(mean tokio-tungstenite-1thread)
awk -v a="$lsl" -v b="$tt1" -v c="$lsl2" -v d="$tt" \
    'BEGIN { printf "same runtime flavour: lsl/tokio-tungstenite-1thread msgs-per-s=%.2f lsl-2threads/tokio-tungstenite msgs-per-s=%.2f\n", a / b, c / d }'
awk -v a="$lsl" -v b="$ws" -v c="$tt" 'BEGIN { printf "ratio lsl/ws msgs-per-s=%.2f lsl/tokio-tungstenite msgs-per-s=%.2f\n", a / b, a / c }'
