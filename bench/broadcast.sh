#!/usr/bin/env bash
# Broadcast to CLIENTS WebSocket clients on loopback against the floor (issue 15).
#
#   lsl-mio  bench/rust/src/bin/lsl_mio_server.rs, this crate's mio adapter: CLIENTS
#            clients on the region URL, each subscribed to domain `bench` (`sub,bench`);
#            the region script answers each `go` from a trigger connection with one
#            llWebsocketBroadcast (Region::websocket_broadcast) to all of them
#   floor    bench/rust/src/bin/write_floor.rs: one thread writing the same frame
#            (same bytes) to CLIENTS connected sockets, one blocking write() each
#
# Each server is stamped CLOCK_MONOTONIC (t0) right before the call / the
# first write and puts t0 in the text; `loadgen broadcast` reads the same
# clock as each client's frame arrives. Per round: last arrival − t0. A round
# starts when the previous one has fully arrived; WARMUP rounds first, then
# BROADCASTS measured ones; median per run. Server CPU per delivered frame:
# utime+stime over the measured rounds / (rounds × clients). The two take
# turns, ROUNDS times, each started fresh. The load generator's one thread
# reads all clients for both, so its own cost is in both times alike.
#
#   bench/broadcast.sh [--clients 1000] [--size 64] [--broadcasts 300] [--warmup 30] [--rounds 2]
#                      [common flags, bench/lib.sh]
#
# Writes OUT/broadcast.tsv. Report line:
#   ratio broadcast-1000/write-floor time=<x>
# (the clients count in the name is --clients); beside it, CPU per delivered frame.
set -euo pipefail
ARGS=("$@")

CLIENTS=1000 SIZE=64 BROADCASTS=300 WARMUP=30 ROUNDS=2
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) CLIENTS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --broadcasts) BROADCASTS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--clients N] [--size B] [--broadcasts N] [--warmup N] [--rounds R] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup broadcast "${ARGS[@]}"
need=$((2 * CLIENTS + 1000))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "broadcast: the hard descriptor limit is $hard; $need are needed (lower --clients)" >&2
    exit 1
fi
ulimit -n "$need"

echo "broadcast: building (release)"
cargo build --quiet --release --manifest-path bench/rust/Cargo.toml --bin lsl_mio_server --bin write_floor --bin loadgen
CLK_TCK=$(getconf CLK_TCK)

start_server() {
    local name=$1 out=$WORK/$1.out
    : > "$out"
    case "$name" in
        lsl-mio) "$BIN/lsl_mio_server" --size "$SIZE" --sessions-per-url $((CLIENTS + 100)) > "$out" 2> "$WORK/$name.err" & ;;
        floor) "$BIN/write_floor" --clients "$CLIENTS" --size "$SIZE" > "$out" 2> "$WORK/$name.err" & ;;
    esac
    SERVER_PID=$!
    SERVER_URL=""
    for _ in $(seq 100); do
        case "$name" in
            lsl-mio) SERVER_URL=$(awk '$1 == "region-url" { print $2; exit }' "$out") ;;
            floor) SERVER_URL=$(awk '$1 == "listening" { print "ws://" $2 "/"; exit }' "$out") ;;
        esac
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    echo "broadcast: $name did not start:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

bench_quiet
TSV=$OUT/broadcast.tsv
echo "# server round p50_us min_us p90_us max_us rounds subscribers incomplete server_cpu_us_per_frame server_cpu_us_per_round" > "$TSV"
for round in $(seq "$ROUNDS"); do
    order="lsl-mio floor"
    [ $((round % 2)) -eq 0 ] && order="floor lsl-mio"
    for name in $order; do
        echo "broadcast: round $round/$ROUNDS: $name, $CLIENTS clients, $BROADCASTS broadcasts of $SIZE B (after $WARMUP)"
        start_server "$name"
        sleep 0.3
        timeout 300 "$BIN/loadgen" broadcast --url "$SERVER_URL" --conns "$CLIENTS" --rounds "$BROADCASTS" \
            --warmup-rounds "$WARMUP" --size "$SIZE" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out" \
            || echo "broadcast: the load generator failed against $name" >&2
        stop_server
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        echo "$name $round $(get bcast_p50_us) $(get bcast_min_us) $(get bcast_p90_us) $(get bcast_max_us) $(get rounds)" \
            "$(get subscribers) $(get incomplete) $(get server_cpu_us_per_frame) $(get server_cpu_us_per_round)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "broadcast:   median %s us to the last client (min %s, p90 %s), %s rounds, %s subscribers, %s incomplete; server %s us CPU per frame\n", $3, $4, $5, $7, $8, $9, $10 }'
    done
done
bench_done
keep "$TSV"

echo
echo "## Broadcast: $CLIENTS WebSocket clients on 127.0.0.1, $SIZE B text, $BROADCASTS broadcasts per run"
echo
echo "| server | round | median µs to the last client | min µs | p90 µs | max µs | server CPU µs per delivered frame | per broadcast |"
echo "|---|---|---|---|---|---|---|---|"
grep -v '^#' "$TSV" | awk '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $10, $11 }'
echo
t_lsl=$(mean_of "$TSV" lsl-mio 3) t_floor=$(mean_of "$TSV" floor 3)
c_lsl=$(mean_of "$TSV" lsl-mio 10) c_floor=$(mean_of "$TSV" floor 10)
echo "cpu per delivered frame: lsl=$(div "$c_lsl" 1 %.3f) us floor=$(div "$c_floor" 1 %.3f) us lsl/floor=$(div "$c_lsl" "$c_floor")"
report "ratio broadcast-$CLIENTS/write-floor time=$(div "$t_lsl" "$t_floor")"
