#!/usr/bin/env bash
# HTTP-in against a minimal hyper server (issue 15): the same keep-alive echo
# (one HTTP/1.1 POST per message, the body answered back with 200), on the
# same runtime flavour (one thread), driven by the same load generator
# (`loadgen http`: CONNS connections in a closed loop, SIZE-byte bodies, SECS
# seconds after 1 s of warm-up; the request carries Host, Content-Type and
# Content-Length only, or with --browser-headers what Chromium's fetch sends).
#
#   lsl-mio       this crate's mio adapter (bench/rust/src/bin/lsl_mio_server.rs): the
#                 script's HTTP-in URL (`http-url`), every request answered with
#                 llHTTPResponse(id, 200, body) — request head parsed, headers kept for
#                 llGetHTTPHeader, a request key minted, an http_request event per request
#   lsl-tokio     the tokio adapter's echo_server example, its `http-url` (the same
#                 echo: its http_echo answers any path but its test paths with the body)
#   hyper-1thread bench/rust/src/bin/hyper_echo_server.rs: hyper 1's http1 server on a
#                 current-thread runtime, 200 with the body (hyper adds content-length
#                 and date); the request path has the same length as an HTTP-in URL's
#
# Servers take turns, ROUNDS times, each started fresh. Server CPU per
# request: utime+stime of /proc/<pid>/stat over the window, over the requests.
#
#   bench/httpin.sh [--secs 10] [--conns 100] [--size 64] [--rounds 2] [--browser-headers]
#                   [common flags, bench/lib.sh]
#
# Writes OUT/httpin.tsv. lsl is the adapter with the lower mean CPU per
# request in this run. Report line:
#   ratio http-in/hyper requests-per-s=<x> cpu-per-request=<y>
set -euo pipefail
ARGS=("$@")

SECS=10 CONNS=100 SIZE=64 ROUNDS=2 BROWSER=()
SERVERS="lsl-mio lsl-tokio hyper-1thread"
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --browser-headers) BROWSER=(--browser-headers); shift ;;
        --servers) SERVERS=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--rounds R] [--browser-headers] [--servers LIST] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup httpin "${ARGS[@]}"
ulimit -n "$(( $(ulimit -Hn) < 4096 ? $(ulimit -Hn) : 4096 ))" 2>/dev/null || true

echo "httpin: building (release)"
build_all --no-node
CLK_TCK=$(getconf CLK_TCK)

# start_server NAME: sets SERVER_PID and SERVER_URL.
start_server() {
    local name=$1 out=$WORK/$1.out
    : > "$out"
    case "$name" in
        lsl-mio) "$BIN/lsl_mio_server" > "$out" 2> "$WORK/$name.err" & ;;
        lsl-tokio)
            "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 --handshakes-per-second 1000000 \
                < /dev/null > "$out" 2> "$WORK/$name.err" &
            ;;
        hyper-1thread) "$BIN/hyper_echo_server" > "$out" 2> "$WORK/$name.err" & ;;
        *) echo "httpin: unknown server $name" >&2; exit 2 ;;
    esac
    SERVER_PID=$!
    SERVER_URL=""
    for _ in $(seq 100); do
        case "$name" in
            lsl*) SERVER_URL=$(awk '$1 == "http-url" { print $2; exit }' "$out") ;;
            *) SERVER_URL=$(awk '$1 == "listening" { print "http://" $2 "/lslhttp/00000000-0000-0000-0000-000000000000/"; exit }' "$out") ;;
        esac
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    echo "httpin: $name did not start:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

bench_quiet
TSV=$OUT/httpin.tsv
echo "# server round requests_per_s p50_us p99_us server_cpu_us_per_request server_cpu_pct client_cpu_pct errors client_bytes server_bytes" > "$TSV"
for round in $(seq "$ROUNDS"); do
    for name in $SERVERS; do
        echo "httpin: round $round/$ROUNDS: $name, $CONNS connections, ${SECS} s"
        start_server "$name"
        sleep 0.3
        timeout $((SECS + 40)) "$BIN/loadgen" http "${BROWSER[@]}" --url "$SERVER_URL" --conns "$CONNS" --secs "$SECS" \
            --size "$SIZE" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out" \
            || echo "httpin: the load generator failed against $name" >&2
        stop_server
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        echo "$name $round $(get rate) $(get p50_us) $(get p99_us) $(get server_cpu_us_per_msg) $(get server_cpu_pct)" \
            "$(get client_cpu_pct) $(get errors) $(get client_bytes_per_msg) $(get server_bytes_per_msg)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "httpin:   %.0f requests/s, p50 %s us, p99 %s us, server %s us CPU/request (%s%% of a core), client %s%%, errors %s\n", $3, $4, $5, $6, $7, $8, $9 }'
        if [ "$(get errors)" != 0 ]; then echo "httpin: WARNING: $name round $round had $(get errors) connection errors"; fi
    done
done
bench_done
keep "$TSV"

echo
echo "## HTTP-in keep-alive echo against hyper: $CONNS connections, closed loop, $SIZE B bodies, ${SECS} s per run${BROWSER:+, browser request headers}"
echo
echo "| server | round | requests/s | p50 µs | p99 µs | server CPU µs/request | server CPU % | load generator CPU % | bytes client→server | bytes server→client |"
echo "|---|---|---|---|---|---|---|---|---|---|"
grep -v '^#' "$TSV" | awk '{ printf "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $10, $11 }'
echo
rate() { mean_of "$TSV" "$1" 3; }
cpu() { mean_of "$TSV" "$1" 6; }
LSL=lsl-mio
if [ -n "$(cpu lsl-tokio)" ] && { [ -z "$(cpu lsl-mio)" ] || above "$(cpu lsl-mio)" "$(cpu lsl-tokio)"; }; then
    LSL=lsl-tokio
fi
echo "http-in = $LSL (the adapter with the lower mean CPU per request in this run)"
echo "reference, the tokio adapter: lsl-tokio/hyper requests-per-s=$(div "$(rate lsl-tokio)" "$(rate hyper-1thread)") cpu-per-request=$(div "$(cpu lsl-tokio)" "$(cpu hyper-1thread)")"
report "ratio http-in/hyper requests-per-s=$(div "$(rate $LSL)" "$(rate hyper-1thread)") cpu-per-request=$(div "$(cpu $LSL)" "$(cpu hyper-1thread)")"
