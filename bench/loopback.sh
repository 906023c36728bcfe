#!/usr/bin/env bash
# WebSocket echo servers over 127.0.0.1, one load generator (issue 15's
# like-for-like comparison):
#
#   lsl-mio                 this crate's mio adapter: bench/rust/src/bin/lsl_mio_server.rs
#                           (one thread owns the region and every socket; the example's
#                           echo script: one object-scope URL, every text sent back)
#   lsl-mio-2regions        the same binary with --regions 2: two Servers, two regions,
#                           two threads, two ports in one process; the connections split
#                           over both (loadgen connects i-th to the i % 2-th URL)
#   lsl-tokio               the tokio adapter's echo_server example (current-thread runtime)
#   lsl-tokio-2threads      the same with --worker-threads 2
#   tokio-tungstenite       bench/rust/src/bin/tt_echo_server.rs (4 KiB buffers; multi-thread)
#   tokio-tungstenite-1thread  the same on a current-thread runtime
#   fastwebsockets-1thread  bench/rust/src/bin/fws_echo_server.rs (denoland's fastwebsockets
#                           on a current-thread runtime, bare TcpStream after the handshake)
#   fastwebsockets-hyper-1thread  (not run by default: --servers) the same through
#                           fastwebsockets' hyper upgrade (frames read through hyper's Upgraded)
#   ws                      Node's ws (bench/node/ws_echo.js, versions from package-lock.json)
#
# Load phase: CONNS connections in a closed loop (send SIZE bytes, await the
# echo) for SECS seconds after 1 s of warm-up; the servers take turns, ROUNDS
# times, each started fresh. Per run: messages/s, p50 and p99 round trip,
# server CPU per message (utime+stime of every thread of the server process,
# /proc/<pid>/stat at the window's edges, over the messages echoed) and the
# server's share of a core.
# Idle phase: IDLE connections held against each fresh server of IDLE_SERVERS;
# its RSS before and with them (VmRSS), and the difference per connection.
#
#   bench/loopback.sh [--secs 10] [--conns 100] [--size 64] [--rounds 2] [--idle 10000]
#                     [--servers "NAME ..."] [--idle-servers "NAME ..."] [common flags, bench/lib.sh]
#
# Writes OUT/loopback.tsv, OUT/loopback-idle.tsv, OUT/loopback.png (messages/s,
# p99 and CPU per message for every server); --keep copies them to
# bench/results/ and bench/loopback.png. The lsl figure is the crate's fastest
# adapter in this run (lowest mean CPU per message of lsl-mio and lsl-tokio).
# Report lines (issue 15):
#   ratio cpu-per-msg lsl/tokio-tungstenite-1thread=<x> lsl/fastwebsockets-1thread=<y>
#   ratio p99 lsl/best-baseline=<z> best-baseline=<name>
#   ratio cpu-per-msg 2regions/1region=<w>
#   idle rss-per-connection bytes: lsl=<n> tokio-tungstenite=<m> ws=<k>
# and today's: ratio lsl/ws msgs-per-s=<a> lsl/tokio-tungstenite msgs-per-s=<b>
set -euo pipefail
ARGS=("$@")

SECS=10 CONNS=100 SIZE=64 ROUNDS=2 IDLE=10000 HOLD=6 THREADS=1
SERVERS="lsl-mio lsl-mio-2regions lsl-tokio lsl-tokio-2threads tokio-tungstenite tokio-tungstenite-1thread fastwebsockets-1thread ws"
IDLE_SERVERS="lsl-mio lsl-tokio tokio-tungstenite fastwebsockets-1thread ws"
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --idle-servers) IDLE_SERVERS=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--secs S] [--conns N] [--size B] [--rounds R] [--idle N] [--threads T] [--servers LIST] [--idle-servers LIST] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup loopback "${ARGS[@]}"

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
SESSIONS=$((IDLE + 1000))

# start_server NAME: starts it with stdout in $WORK/NAME.out; sets SERVER_PID and
# SERVER_URL (comma-separated when the server has several regions).
start_server() {
    local name=$1 out=$WORK/$1.out urls=1
    : > "$out"
    case "$name" in
        lsl-mio) "$BIN/lsl_mio_server" --sessions-per-url "$SESSIONS" > "$out" 2> "$WORK/$name.err" & ;;
        lsl-mio-2regions)
            urls=2
            "$BIN/lsl_mio_server" --regions 2 --sessions-per-url "$SESSIONS" > "$out" 2> "$WORK/$name.err" &
            ;;
        lsl-tokio | lsl-tokio-2threads)
            local threads=()
            [ "$name" = lsl-tokio-2threads ] && threads=(--worker-threads 2)
            "$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 "${threads[@]}" \
                --sessions-per-url "$SESSIONS" --handshakes-per-second 1000000 \
                < /dev/null > "$out" 2> "$WORK/$name.err" &
            ;;
        tokio-tungstenite) "$BIN/tt_echo_server" --bind 127.0.0.1:0 > "$out" 2> "$WORK/$name.err" & ;;
        tokio-tungstenite-1thread)
            "$BIN/tt_echo_server" --bind 127.0.0.1:0 --current-thread > "$out" 2> "$WORK/$name.err" &
            ;;
        fastwebsockets-1thread) "$BIN/fws_echo_server" --bind 127.0.0.1:0 > "$out" 2> "$WORK/$name.err" & ;;
        fastwebsockets-hyper-1thread)
            "$BIN/fws_echo_server" --bind 127.0.0.1:0 --hyper > "$out" 2> "$WORK/$name.err" &
            ;;
        ws) node "$ROOT/bench/node/ws_echo.js" 0 > "$out" 2> "$WORK/$name.err" & ;;
        *) echo "loopback: unknown server $name" >&2; exit 2 ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 100); do
        case "$name" in
            lsl*) SERVER_URL=$(awk -v n="$urls" '$1 == "object-url" { u = u (k++ ? "," : "") $2 } k == n { print u; exit }' "$out") ;;
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

bench_quiet

TSV=$OUT/loopback.tsv
echo "# server round msgs_per_s p50_us p99_us server_cpu_us_per_msg server_cpu_pct client_cpu_pct errors" > "$TSV"
for round in $(seq "$ROUNDS"); do
    for name in $SERVERS; do
        echo "loopback: round $round/$ROUNDS: $name, $CONNS connections, ${SECS} s"
        start_server "$name"
        sleep 0.3
        timeout $((SECS + 40)) "$BIN/loadgen" ws --url "$SERVER_URL" --conns "$CONNS" --secs "$SECS" \
            --size "$SIZE" --threads "$THREADS" --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out" \
            || echo "loopback: the load generator failed against $name" >&2
        stop_server
        get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }
        printf '%s %s %s %s %s %s %s %s %s\n' "$name" "$round" "$(get rate)" "$(get p50_us)" "$(get p99_us)" \
            "$(get server_cpu_us_per_msg)" "$(get server_cpu_pct)" "$(get client_cpu_pct)" "$(get errors)" >> "$TSV"
        tail -1 "$TSV" | awk '{ printf "loopback:   %.0f msg/s, p50 %s us, p99 %s us, server %s us CPU/msg (%s%% of a core), client %s%%, errors %s\n", $3, $4, $5, $6, $7, $8, $9 }'
        if [ "$(get errors)" != 0 ]; then echo "loopback: WARNING: $name round $round had $(get errors) connection errors"; fi
    done
done

IDLE_TSV=$OUT/loopback-idle.tsv
echo "# server connections rss_before_kib rss_with_kib bytes_per_conn alive" > "$IDLE_TSV"
for name in $IDLE_SERVERS; do
    [ "$IDLE" -gt 0 ] || break
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
bench_done

"$BIN/plot" "$TSV" "$OUT/loopback.png" \
    "Echo over 127.0.0.1: $CONNS connections, ${SIZE} B, closed loop, $(nproc) cores, $(date -u +%Y-%m-%d), load before $(echo "$LOAD_BEFORE" | cut -d' ' -f1)"
keep "$TSV"
keep "$IDLE_TSV"
keep "$OUT/loopback.png" bench/loopback.png

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
        END { if (k) printf "| %s | %.0f | %.0f | %.2f |\n", n, r / k, p / k, c / k }'
done
echo
echo "## Idle: $IDLE connections held"
echo
echo "| server | connected | RSS before MiB | RSS with them MiB | bytes per connection |"
echo "|---|---|---|---|---|"
grep -v '^#' "$IDLE_TSV" | awk '{ printf "| %s | %s | %.1f | %.1f | %s |\n", $1, $2, $3/1024, $4/1024, $5 }'
echo

rate() { mean_of "$TSV" "$1" 3; }
p99() { mean_of "$TSV" "$1" 5; }
cpu() { mean_of "$TSV" "$1" 6; }
idle_b() { grep -v '^#' "$IDLE_TSV" | awk -v n="$1" '$1 == n { v = $5 } END { print (v == "" ? "n/a" : v) }'; }

# The crate's fastest adapter in this run.
LSL=lsl-mio
if [ -n "$(cpu lsl-tokio)" ] && { [ -z "$(cpu lsl-mio)" ] || above "$(cpu lsl-mio)" "$(cpu lsl-tokio)"; }; then
    LSL=lsl-tokio
fi
echo "lsl = $LSL (the adapter with the lower mean CPU per message in this run)"
best="" best_p99=""
for b in tokio-tungstenite tokio-tungstenite-1thread fastwebsockets-1thread ws; do
    v=$(p99 "$b")
    [ -n "$v" ] || continue
    if [ -z "$best_p99" ] || above "$best_p99" "$v"; then best=$b best_p99=$v; fi
done
echo "reference, the tokio adapter: lsl-tokio/tokio-tungstenite-1thread cpu-per-msg=$(div "$(cpu lsl-tokio)" "$(cpu tokio-tungstenite-1thread)") msgs-per-s=$(div "$(rate lsl-tokio)" "$(rate tokio-tungstenite-1thread)"); lsl-tokio-2threads/tokio-tungstenite msgs-per-s=$(div "$(rate lsl-tokio-2threads)" "$(rate tokio-tungstenite)")"
echo "same runtime flavour: lsl/tokio-tungstenite-1thread msgs-per-s=$(div "$(rate $LSL)" "$(rate tokio-tungstenite-1thread)") lsl/fastwebsockets-1thread msgs-per-s=$(div "$(rate $LSL)" "$(rate fastwebsockets-1thread)")"
report "ratio lsl/ws msgs-per-s=$(div "$(rate $LSL)" "$(rate ws)") lsl/tokio-tungstenite msgs-per-s=$(div "$(rate $LSL)" "$(rate tokio-tungstenite)")"
report "ratio p99 lsl/best-baseline=$(div "$(p99 $LSL)" "$best_p99") best-baseline=${best:-none}"
report "ratio cpu-per-msg 2regions/1region=$(div "$(cpu lsl-mio-2regions)" "$(cpu lsl-mio)")"
report "idle rss-per-connection bytes: lsl=$(idle_b $LSL) tokio-tungstenite=$(idle_b tokio-tungstenite) ws=$(idle_b ws)"
report "ratio cpu-per-msg lsl/tokio-tungstenite-1thread=$(div "$(cpu $LSL)" "$(cpu tokio-tungstenite-1thread)") lsl/fastwebsockets-1thread=$(div "$(cpu $LSL)" "$(cpu fastwebsockets-1thread)")"
