#!/usr/bin/env bash
# Soak under churn and faults (issue 16): the echo_server example with 3
# regions and plain + TLS listeners, against bench/rust/src/bin/soak/: object-
# and region-scope WebSocket clients (plain and wss://), HTTP-in (http:// and
# https://), SSE with Last-Event-ID resumes and line clients, every message
# tagged and checked; a lifecycle command every 3 s (reset, rez,
# region-change, owner-change, remove, release; every 10th a region
# restart), every URL it revoked probed over every transport; and broken
# clients in turn (resets mid-frame, half-open both ways, slowloris,
# oversized and malformed frames and requests, never-reading clients, a
# handshake flood from one address).
#
#   bench/soak.sh [MINUTES] [--out DIR]      (default 30 minutes, target/soak)
#
# Prints the counters every minute and, last,
#   lost=0 misrouted=0 reordered=0 after_revoke=0 unanswered=0 sent=… result=pass
# Exits non-zero unless lost, misrouted, reordered, after_revoke and
# unanswered are 0, RSS over the second half stays within ±5 % of its
# half-way value, the server's descriptors are back to the baseline after
# the clients are gone, and the server's log holds no panic. Uses only
# 127.0.0.x; every loop is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MINUTES=30 OUT=$ROOT/target/soak
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=$2; shift 2 ;;
        *[!0-9.]* | '') echo "usage: $0 [MINUTES] [--out DIR]" >&2; exit 2 ;;
        *) MINUTES=$1; shift ;;
    esac
done
mkdir -p "$OUT"

echo "soak: $(date -u '+%F %T') UTC, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $MINUTES minutes, outputs in $OUT"
echo "soak: building the example and the soak program (release)"
cargo build --release --quiet --features tokio,tls --example echo_server
(cd bench/rust && cargo build --release --quiet --bin soak)
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
bench/rust/target/release/soak --server "$ROOT/target/release/examples/echo_server" \
    --minutes "$MINUTES" --out "$OUT" | tee "$OUT/soak.out" || status=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q panicked "$OUT/server.log"; then
    echo "soak: the server panicked:" >&2
    grep -m5 -A5 panicked "$OUT/server.log" >&2
fi
exit "$status"
