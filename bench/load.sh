#!/usr/bin/env bash
# Load test of the tokio adapter: CONNECTIONS concurrent WebSocket connections
# over 127.0.0.1 to the echo_server example's object URL, MESSAGES messages in
# all, every echo checked by bench/rust/src/bin/load.rs.
#
#   bench/load.sh [CONNECTIONS] [MESSAGES]        (defaults 10000 and 1000000)
#
# Builds the echo_server example and the load generator (release), starts the
# server on 127.0.0.1:0 with --sessions-per-url and --handshakes-per-second
# above what the test needs (the load is not meant to meet the limits), raises
# the descriptor limit (every connection is one descriptor in the server and
# one in the generator), and runs the generator with the server's pid, which
# reads the server's RSS from /proc.
#
# Prints progress every 5 s, then messages/s, p50/p99 round trip, the server's
# RSS before connecting, with every connection idle, and its peak (VmHWM), the
# RSS per idle connection, and as the last line
#   lost=<n> misrouted=<n> reordered=<n> connections=<n> messages=<n>
# Exits non-zero unless lost, misrouted and reordered are 0 and every
# connection opened and every message was sent and echoed.
#
# Environment: LOAD_WINDOW (messages in flight per connection, 4), LOAD_SIZE
# (bytes per message, 64), LOAD_DEADLINE (seconds for the whole run, 300),
# LOAD_THREADS (the generator's tokio worker threads, 1).
set -euo pipefail

CONNS=${1:-10000}
MESSAGES=${2:-1000000}
WINDOW=${LOAD_WINDOW:-4}
SIZE=${LOAD_SIZE:-64}
DEADLINE=${LOAD_DEADLINE:-300}
THREADS=${LOAD_THREADS:-1}
for n in "$CONNS" "$MESSAGES" "$WINDOW" "$SIZE" "$DEADLINE" "$THREADS"; do
    case "$n" in
        '' | *[!0-9]* | 0*) echo "usage: $0 [CONNECTIONS] [MESSAGES] (positive whole numbers)" >&2; exit 2 ;;
    esac
done
if [ "$#" -gt 2 ]; then
    echo "usage: $0 [CONNECTIONS] [MESSAGES]" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
ROOT=$(pwd)

# Each process (server, generator) holds one descriptor per connection, plus
# its listener, runtime and standard streams.
need=$((CONNS + 1024))
soft=$(ulimit -Sn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$need" ]; then
    hard=$(ulimit -Hn)
    if ! ulimit -Sn "$need" 2> /dev/null; then
        echo "load: $CONNS connections need $need open files per process, but the limit is $soft" \
            "and cannot be raised past the hard limit $hard; raise the hard limit (as root:" \
            "ulimit -Hn $need, or nofile in /etc/security/limits.conf) or pass fewer connections" >&2
        exit 1
    fi
fi

# The generator binds 50 source addresses (127.0.0.2 …), each with the whole
# ephemeral port range; say so early if even that cannot hold the connections.
if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low high < /proc/sys/net/ipv4/ip_local_port_range
    if [ $(((high - low + 1) * 50)) -lt "$CONNS" ]; then
        echo "load: the ephemeral port range $low-$high times 50 source addresses is below $CONNS connections" >&2
        exit 1
    fi
fi

echo "load: building (release)"
cargo build --quiet --release --features tokio --example echo_server
cargo build --quiet --release --manifest-path bench/rust/Cargo.toml --bin load

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2> /dev/null || true
        wait "$SERVER_PID" 2> /dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 \
    --sessions-per-url $((CONNS + 100)) --handshakes-per-second 1000000 \
    < /dev/null > "$WORK/server.out" 2> "$WORK/server.err" &
SERVER_PID=$!
URL=""
for _ in $(seq 100); do
    URL=$(awk '$1 == "object-url" { print $2; exit }' "$WORK/server.out")
    [ -n "$URL" ] && break
    if ! kill -0 "$SERVER_PID" 2> /dev/null; then break; fi
    sleep 0.1
done
if [ -z "$URL" ]; then
    echo "load: echo_server printed no object-url:" >&2
    cat "$WORK/server.err" >&2
    exit 1
fi
echo "load: echo_server (pid $SERVER_PID) on $URL; descriptor limit $(ulimit -Sn); $(nproc) cores"

status=0
timeout $((DEADLINE + 120)) "$ROOT/bench/rust/target/release/load" --url "$URL" --conns "$CONNS" \
    --messages "$MESSAGES" --window "$WINDOW" --size "$SIZE" --deadline "$DEADLINE" --threads "$THREADS" \
    --pid "$SERVER_PID" --clk-tck "$(getconf CLK_TCK)" | tee "$WORK/load.out" || status=$?
if ! kill -0 "$SERVER_PID" 2> /dev/null; then
    echo "load: echo_server is gone; its stderr:"
    cat "$WORK/server.err"
    # The summary stays the last line.
    tail -n 1 "$WORK/load.out"
    status=1
fi
exit "$status"
