#!/usr/bin/env bash
# The core against tungstenite's bare engine, in memory, one process:
#
# - echo: a masked 64 B / 1024 B text frame in, the echo out, for the core
#   (Region, default config, an echo script) and tungstenite with its default
#   config and with 4 KiB read/write buffers, sending a copy of the text as
#   benches/echo.rs does (and, for reference, 4 KiB sending the received
#   buffer back: -zerocopy); paths interleaved, ROUNDS rounds, medians
#   (bench/rust/src/bin/micro.rs).
# - handshake: one complete server handshake, core vs tungstenite::accept.
# - idle heap: live heap bytes per idle session after the handshake, counted
#   by a global allocator: the core with Config::default() and 10,000
#   sessions, tungstenite WebSockets (default config, and 4 KiB) with 1,000
#   (bench/rust/src/bin/idle_heap.rs).
#
#   bench/compare.sh [--rounds 11] [--criterion] [common flags, bench/lib.sh]
#
# --criterion also runs the criterion benches (benches/echo.rs, quick mode)
# for reference. Writes OUT/micro.txt and OUT/idle_heap.txt (--keep: to
# bench/results/). The last three lines:
#   ratio core/tungstenite msgs-per-s: 64B=<x> 1024B=<y>            (against tungstenite-4k)
#   ratio core/tungstenite-zerocopy msgs-per-s: 64B=<x> 1024B=<y>   (against tungstenite-4k-zerocopy)
#   idle heap per session bytes: core=<n> tungstenite-default=<m>
set -euo pipefail
ARGS=("$@")

ROUNDS=11 CRITERION=0
cd "$(dirname "$0")/.."
. "$(pwd)/bench/lib.sh"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --criterion) CRITERION=1; shift ;;
        --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
        *) echo "usage: $0 [--rounds R] [--criterion] $BENCH_COMMON_USAGE" >&2; exit 2 ;;
    esac
done
bench_setup compare "${ARGS[@]}"

echo "compare: building (release)"
cargo build --quiet --release --manifest-path bench/rust/Cargo.toml --bin micro --bin idle_heap
if [ "$CRITERION" = 1 ]; then
    cargo bench --quiet --bench echo --no-run 2>/dev/null
fi
bench_quiet

if [ "$CRITERION" = 1 ]; then
    echo "compare: criterion (cargo bench --bench echo -- --quick)"
    cargo bench --quiet --bench echo -- --quick 2>/dev/null | grep -E '^(echo|handshake)/|time:' || true
fi

echo "compare: echo and handshake, $ROUNDS interleaved rounds"
"$BIN/micro" --rounds "$ROUNDS" > "$RESULTS/micro.txt"
echo "compare: idle heap"
"$BIN/idle_heap" > "$RESULTS/idle_heap.txt"
bench_done
keep "$RESULTS/micro.txt"
keep "$RESULTS/idle_heap.txt"

ns() { awk -v k="$1" '$1 == "result" && ($2 " " $3 " " $4) == k { print $5 }' "$RESULTS/micro.txt"; }
hs() { awk -v k="$1" '$1 == "result" && ($2 " " $3) == k { print $4 }' "$RESULTS/micro.txt"; }

echo
echo "## In-memory echo (median of $ROUNDS interleaved rounds)"
echo
echo "| size | path | ns per echo | echoes/s | core / this path (msgs/s) |"
echo "|---|---|---|---|---|"
for size in 64 1024; do
    core=$(ns "echo $size core")
    for path in core tungstenite-default tungstenite-4k tungstenite-4k-zerocopy; do
        t=$(ns "echo $size $path")
        awk -v s="$size" -v p="$path" -v t="$t" -v c="$core" \
            'BEGIN { printf "| %s B | %s | %.1f | %.0f | %.2f |\n", s, p, t, 1e9 / t, t / c }'
    done
done
echo
echo "| handshake | ns | per second |"
echo "|---|---|---|"
for path in core tungstenite-default; do
    t=$(hs "handshake $path")
    awk -v p="$path" -v t="$t" 'BEGIN { printf "| %s | %.0f | %.0f |\n", p, t, 1e9 / t }'
done
echo
echo "## Idle heap per session (live bytes, counting allocator)"
echo
echo "| path | after handshake (B) | after one 64 B echo (B) |"
echo "|---|---|---|"
grep '^result idle' "$RESULTS/idle_heap.txt" | awk '{ printf "| %s | %s | %s |\n", $3, $4, $5 }'
sed -n 's/^\([a-z0-9-]*\) (\([0-9]*\)[^)]*).*/\1 \2/p' "$RESULTS/idle_heap.txt" \
    | awk '{ printf "%s%s: %s sessions", (NR > 1 ? ", " : "("), $1, $2 } END { print ")" }'
echo
# msgs/s ratio = the other path's ns per echo / the core's.
r() { div "$(ns "echo $1 $2")" "$(ns "echo $1 core")"; }
idle() { awk -v p="$1" '$1 == "result" && $2 == "idle" && $3 == p { print $4 }' "$RESULTS/idle_heap.txt"; }
report "ratio core/tungstenite msgs-per-s: 64B=$(r 64 tungstenite-4k) 1024B=$(r 1024 tungstenite-4k)"
report "ratio core/tungstenite-zerocopy msgs-per-s: 64B=$(r 64 tungstenite-4k-zerocopy) 1024B=$(r 1024 tungstenite-4k-zerocopy)"
report "idle heap per session bytes: core=$(idle core) tungstenite-default=$(idle tungstenite-default)"
