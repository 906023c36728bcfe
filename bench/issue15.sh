#!/usr/bin/env bash
# Every measurement of issue 15, one script after another, then every report
# line they printed, in one place:
#
#   compare.sh, loopback.sh, httpin.sh, broadcast.sh, profile.sh (perf: lsl-mio,
#   lsl-mio-2regions for the lock check, tokio-tungstenite-1thread,
#   fastwebsockets-1thread; callgrind: the same four one-thread servers, and
#   the HTTP-in echo of lsl-mio and hyper-1thread)
#
#   bench/issue15.sh [--keep] [--ignore-load] [--quick] [--out DIR]
#
# Each script waits for the 1-minute load to fall to 1.0 before it measures
# (its own --settle, 300 s) and refuses to report if it does not; this one
# stops at the first script that fails. --quick runs each with short
# settings (a check of the scripts, not figures; only with --ignore-load).
# --keep is passed on (each script copies its figures to bench/results/).
# Outputs: DIR/NAME/ per script (default target/bench/NAME/). About 15 minutes
# plus the waits for the load to settle between scripts.
set -euo pipefail
cd "$(dirname "$0")/.."

PASS=() QUICK=0 BASE=""
while [ $# -gt 0 ]; do
    case "$1" in
        --keep | --ignore-load) PASS+=("$1"); shift ;;
        --quick) QUICK=1; shift ;;
        --out) BASE=$2; shift 2 ;;
        *) echo "usage: $0 [--keep] [--ignore-load] [--quick] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [ "$QUICK" = 1 ] && [[ " ${PASS[*]} " != *" --ignore-load "* ]]; then
    echo "issue15: --quick takes --ignore-load (short runs are not figures)" >&2
    exit 2
fi
[ -n "$BASE" ] || BASE=$(pwd)/target/bench
mkdir -p "$BASE"

# run NAME SCRIPT [ARGS...]: one script with its output directory; its log is BASE/NAME/SCRIPT.out.
LOGS=()
run() {
    local name=$1 script=$2
    shift 2
    echo "issue15: bench/$script.sh $* ${PASS[*]}"
    bench/"$script".sh "$@" "${PASS[@]}" --out "$BASE/$name"
    LOGS+=("$BASE/$name/$script.out")
}

if [ "$QUICK" = 1 ]; then
    run compare compare --rounds 1
    run loopback loopback --secs 2 --rounds 1 --idle 500
    run httpin httpin --secs 2 --rounds 1
    run broadcast broadcast --broadcasts 20 --warmup 5 --rounds 1
    P=(--secs 3)
else
    run compare compare
    run loopback loopback
    run httpin httpin
    run broadcast broadcast
    P=()
fi
for s in lsl-mio lsl-mio-2regions tokio-tungstenite-1thread fastwebsockets-1thread; do
    run "profile-$s" profile --server "$s" "${P[@]}"
done
for s in lsl-mio lsl-tokio tokio-tungstenite-1thread fastwebsockets-1thread; do
    run "callgrind-$s" profile --tool callgrind --server "$s" "${P[@]}"
done
for s in lsl-mio hyper-1thread; do
    run "callgrind-$s-http" profile --tool callgrind --load http --server "$s" "${P[@]}"
done

echo
echo "## issue 15: every report line"
echo
for log in "${LOGS[@]}"; do
    grep -E '^(NOT-A-REPORT )?(ratio |idle rss-per-connection )' "$log" || true
done
echo
echo "## load before / after each script"
echo
for log in "${LOGS[@]}"; do
    printf '%s: %s -> %s\n' "$(basename "$(dirname "$log")")" \
        "$(grep -m1 '^load before' "$log" | cut -d' ' -f3)" "$(grep -m1 '^load after' "$log" | cut -d' ' -f3)"
done
echo
echo "## lock check (lsl-mio-2regions) and instructions per message"
echo
grep -E '^futex|^context-switches|^epoll_wait' "$BASE/profile-lsl-mio-2regions/profile-lsl-mio-2regions.txt" || true
grep -A3 '^## every sampled' "$BASE/profile-lsl-mio-2regions/profile-lsl-mio-2regions.txt" | tail -n +2 || true
for s in lsl-mio lsl-tokio tokio-tungstenite-1thread fastwebsockets-1thread; do
    printf '%s: ' "$s"
    grep -m1 '^instructions in the measured window' "$BASE/callgrind-$s/profile-$s-callgrind.txt" || echo
done
for s in lsl-mio hyper-1thread; do
    printf '%s http-in: ' "$s"
    grep -m1 '^instructions in the measured window' "$BASE/callgrind-$s-http/profile-$s-http-callgrind.txt" || echo
done
