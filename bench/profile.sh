#!/usr/bin/env bash
# Where the time goes: a short profile of one echo server under the loopback
# load (CONNS connections, closed loop, SIZE B), for PERFORMANCE.md.
#
#   bench/profile.sh [--server lsl-mio] [--secs 8] [--conns 100] [--size 64] [--top 30]
#                    [--tool perf|callgrind] [common flags, bench/lib.sh]
#
# Servers: lsl-mio, lsl-mio-2regions, lsl-tokio, tokio-tungstenite-1thread,
# fastwebsockets-1thread (as in bench/loopback.sh). With --load http, the
# HTTP-in keep-alive echo of bench/httpin.sh instead: lsl-mio, lsl-tokio (their
# http-url) or hyper-1thread.
#
# With perf (Debian's linux-perf, installed if missing; the default):
# 1. `perf stat` on the server over SECS seconds of load: system calls
#    (read/recvfrom, write/sendto/writev, epoll_wait, futex) and context
#    switches per echoed message. For lsl-mio-2regions this is the lock
#    check: futex calls per message (a contended lock or a cross-thread wake
#    would show as futex calls; an uncontended glibc mutex makes none, so the
#    profile's symbols are listed too, below).
# 2. `perf record -e cpu-clock -g` over the next SECS seconds, then the top
#    entries by self time (`perf report --no-children`), by symbol, and the
#    same grouped by object (kernel, the binary, libc), and every sampled
#    symbol whose name says lock, mutex, futex or atomic.
# With --tool callgrind (also where perf is missing): the server runs under
# valgrind (about 50x slower, so far fewer messages); its counters are zeroed
# when the load generator's window starts and dumped when it ends, so the
# report gives user-space instructions per echoed message (system calls not
# counted; repeatable within a few per cent whatever the machine's load) and
# the top entries of callgrind_annotate by self cost.
# perf's "per message" counts divide by the run's mean rate × SECS (about ±5%).
#
# Writes OUT/profile-SERVER.txt (callgrind: profile-SERVER-callgrind.txt), the
# report, with the date and load, and the raw perf.data / callgrind.out.* beside
# it; --keep copies the report to bench/results/.
set -euo pipefail
ARGS=("$@")

SERVER=lsl-mio SECS=8 CONNS=100 SIZE=64 TOP=30 TOOL=perf LOAD=ws
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --server) SERVER=$2; shift 2 ;;
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --top) TOP=$2; shift 2 ;;
        --tool) TOOL=$2; shift 2 ;;
        --load) LOAD=$2; shift 2 ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--server NAME] [--secs S] [--conns N] [--size B] [--top N] [--tool perf|callgrind] [--load ws|http] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup profile "${ARGS[@]}"

if [ "$TOOL" = perf ] && ! command -v perf > /dev/null; then
    echo "profile: installing Debian's linux-perf"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq linux-perf \
        || { echo "profile: no perf; falling back to callgrind"; TOOL=callgrind; }
fi
if [ "$TOOL" = callgrind ] && ! command -v valgrind > /dev/null; then
    echo "profile: valgrind is needed for --tool callgrind (apt-get install valgrind)" >&2
    exit 1
fi

echo "profile: building (release, with line tables)"
build_all --no-node
CLK_TCK=$(getconf CLK_TCK)
TAG=$SERVER
[ "$LOAD" = http ] && TAG=$SERVER-http
REPORT=$OUT/profile-$TAG.txt
[ "$TOOL" = callgrind ] && REPORT=$OUT/profile-$TAG-callgrind.txt

# server_cmd NAME: the command line of a server (sets URLS, how many object-url lines it prints).
server_cmd() {
    URLS=1
    case "$1" in
        lsl-mio) CMD=("$BIN/lsl_mio_server") ;;
        lsl-mio-2regions) CMD=("$BIN/lsl_mio_server" --regions 2); URLS=2 ;;
        lsl-tokio) CMD=("$ROOT/target/release/examples/echo_server" --bind 127.0.0.1:0 --handshakes-per-second 1000000) ;;
        tokio-tungstenite-1thread) CMD=("$BIN/tt_echo_server" --current-thread) ;;
        fastwebsockets-1thread) CMD=("$BIN/fws_echo_server") ;;
        hyper-1thread) CMD=("$BIN/hyper_echo_server") ;;
        *) echo "profile: unknown server $1" >&2; exit 2 ;;
    esac
}

start() {
    local out=$WORK/server.out
    : > "$out"
    if [ "$TOOL" = callgrind ]; then
        rm -f "$OUT"/callgrind.out*
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" "${CMD[@]}" < /dev/null > "$out" 2> "$WORK/server.err" &
    else
        "${CMD[@]}" < /dev/null > "$out" 2> "$WORK/server.err" &
    fi
    SERVER_PID=$!
    SERVER_URL=""
    for _ in $(seq 300); do
        case "$SERVER" in
            lsl*) SERVER_URL=$(awk -v n="$URLS" -v k0="$URL_KEY" '$1 == k0 { u = u (k++ ? "," : "") $2 } k == n { print u; exit }' "$out") ;;
            hyper*) SERVER_URL=$(awk '$1 == "listening" { print "http://" $2 "/lslhttp/00000000-0000-0000-0000-000000000000/"; exit }' "$out") ;;
            *) SERVER_URL=$(awk '$1 == "listening" { print "ws://" $2 "/"; exit }' "$out") ;;
        esac
        [ -n "$SERVER_URL" ] && return 0
        sleep 0.1
    done
    echo "profile: $SERVER did not start:" >&2
    cat "$WORK/server.err" >&2
    exit 1
}

server_cmd "$SERVER"
URL_KEY=object-url
[ "$LOAD" = http ] && URL_KEY=http-url
bench_quiet
start
sleep 0.5
get() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" "$WORK/load.out" | head -1; }

if [ "$TOOL" = callgrind ]; then
    "$BIN/loadgen" "$LOAD" --url "$SERVER_URL" --conns "$CONNS" --secs "$SECS" --size "$SIZE" --warmup 2 > "$WORK/load.out" &
    gen=$!
    # Count only the measured window: zero the counters at its start, dump at its end.
    sleep 2.2
    callgrind_control -z "$SERVER_PID" > /dev/null
    sleep "$SECS"
    callgrind_control -d "$SERVER_PID" > /dev/null
    wait "$gen" || true
    # A background job ignores SIGINT; valgrind writes its last dump on SIGTERM too.
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    bench_done
    msgs=$(get msgs)
    dump=$(ls -t "$OUT"/callgrind.out.* 2> /dev/null | head -1)
    set +o pipefail # head ends callgrind_annotate early
    {
        echo "# callgrind of $SERVER under $CONNS connections, $SIZE B $LOAD echo: $(get rate) msg/s under valgrind"
        echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load before $LOAD_BEFORE, after $LOAD_AFTER${REPORT_PREFIX:+ (NOT A REPORT: --ignore-load)}"
        total=$(callgrind_annotate "$dump" 2> /dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
        echo "instructions in the measured window: $total over $msgs messages (requests): $(div "$total" "$msgs" %.0f) per message (user space only: system calls are not counted)"
        echo
        callgrind_annotate --threshold=100 "$dump" 2> /dev/null | sed -n "/file:function/,\$p" | grep -v "clone.S:clone\|pthread_create.c:start_thread\|thread_start\|call_once{{vtable.shim}}\|__rust_begin_short_backtrace\|libc_start_call_main\|__libc_start_main\|lang_start\|[ (]main\b" | head -$((TOP + 2))
    } > "$REPORT"
    set -o pipefail
else
    "$BIN/loadgen" "$LOAD" --url "$SERVER_URL" --conns "$CONNS" --secs $((SECS * 2)) --size "$SIZE" --warmup 1 \
        --pid "$SERVER_PID" --clk-tck "$CLK_TCK" > "$WORK/load.out" &
    gen=$!
    sleep 1.5
    # perf stat's own report goes to stderr.
    perf stat -x, -e 'syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_sendto,syscalls:sys_enter_writev,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,context-switches,task-clock' \
        -p "$SERVER_PID" -- sleep "$SECS" 2> "$WORK/stat.csv" > /dev/null || true
    perf record -q -e cpu-clock -F 4000 -g -p "$SERVER_PID" -o "$OUT/perf.data" -- sleep $((SECS - 1)) > /dev/null 2>&1 || true
    wait "$gen" || true
    bench_done
    rate=$(get rate)
    set +o pipefail # head ends perf report early
    {
        echo "# $SERVER under $CONNS connections, closed loop, $SIZE B $LOAD echo: $rate msg/s, $(get server_cpu_us_per_msg) us server CPU per message (the whole $((SECS * 2)) s window)"
        echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), load before $LOAD_BEFORE, after $LOAD_AFTER${REPORT_PREFIX:+ (NOT A REPORT: --ignore-load)}"
        echo
        echo "## per echoed message over ${SECS} s (perf stat; messages = the run's mean rate x ${SECS} s)"
        echo
        awk -F, -v r="$rate" -v s="$SECS" '$3 != "" && $1 ~ /^[0-9.]+$/ {
            n = r * s; name = $3; sub(/^syscalls:sys_enter_/, "", name)
            if (name == "task-clock") printf "%-16s %10.3f us CPU per message\n", name, $1 * 1000 / n
            else printf "%-16s %10.3f per message (%d in all)\n", name, $1 / n, $1 }' "$WORK/stat.csv"
        echo
        echo "## top $TOP by self time (perf record -e cpu-clock, $((SECS - 1)) s)"
        echo
        perf report -i "$OUT/perf.data" --no-children --sort symbol --stdio --percent-limit 0.3 -g none 2> /dev/null \
            | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -"$TOP"
        echo
        echo "## by object"
        echo
        perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2> /dev/null | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -8
        echo
        echo "## every sampled user-space symbol naming a lock, mutex, futex or atomic"
        echo
        perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio -g none 2> /dev/null | grep -v '^#' \
            | grep -v kernel | grep -iE '(^|[^c])lock|mutex|futex|atomic|parking|condvar' || echo "(none in user space)"
    } > "$REPORT"
    set -o pipefail
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
fi
keep "$REPORT"
cat "$REPORT"
