#!/usr/bin/env bash
# The core of this checkout against the core of an earlier commit, side by
# side in one run: instructions per in-memory echo (callgrind, deterministic
# whatever else the machine does), idle heap per session, and the
# interleaved wall-clock rounds of bench/compare.sh for both.
#
#   bench/against.sh REV [--rounds 5]
#
# REV is checked out in a temporary git worktree and its bench crate built
# there; needs valgrind (Debian's package, installed if missing). The last line:
#   against REV: instr/echo 64B=<old>-><new> 1024B=<old>-><new> idle-heap=<old>-><new>
set -euo pipefail
ARGS=("$@")
cd "$(dirname "$0")/.."

REV=${1:?usage: bench/against.sh REV [--rounds R]}
ROUNDS=5
[ "${2:-}" = --rounds ] && ROUNDS=${3:?}
source bench/lib.sh
# Common flags (bench/lib.sh) after REV and --rounds.
for ((i = 1; i <= $#; i++)); do
    case "${!i}" in
        --out | --settle) j=$((i + 1)); bench_flag "${!i}" "${!j}" ;;
        --keep | --ignore-load) bench_flag "${!i}" ;;
    esac
done
bench_setup against "${ARGS[@]}"

if ! command -v valgrind > /dev/null; then
    echo "against: installing Debian's valgrind"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get install -y -qq valgrind > /dev/null
fi

OLD=$WORK/old
git worktree add --quiet --detach "$OLD" "$REV"
trap 'git worktree remove --force "$OLD"; bench_cleanup' EXIT
for tree in "$OLD" "$ROOT"; do
    echo "against: building $( [ "$tree" = "$OLD" ] && echo "$REV" || echo this checkout ) (release)"
    cargo build --quiet --release --manifest-path "$tree/bench/rust/Cargo.toml" --bin micro --bin idle_heap
done

# Instructions per echo: the difference of two runs cancels start-up.
instr() {
    local bin=$1 size=$2 n
    for n in 10000 20000; do
        valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$n" "$bin" --profile core "$size" "$n" \
            > /dev/null 2> "$WORK/cg.$n.err"
    done
    local a b
    a=$(grep -o 'Collected : [0-9]*' "$WORK/cg.10000.err" | grep -o '[0-9]*$')
    b=$(grep -o 'Collected : [0-9]*' "$WORK/cg.20000.err" | grep -o '[0-9]*$')
    echo $(( (b - a) / 10000 ))
}
idle() { "$1" | awk '$1 == "result" && $2 == "idle" && $3 == "core" { print $4 }'; }
ns() { awk -v s="$2" '$1 == "result" && $2 == "echo" && $3 == s && $4 == "core" { print $5 }' "$1"; }

declare -A R
for side in old new; do
    bin=$([ $side = old ] && echo "$OLD" || echo "$ROOT")/bench/rust/target/release
    echo "against: callgrind and idle heap, $side"
    R[$side,i64]=$(instr "$bin/micro" 64)
    R[$side,i1k]=$(instr "$bin/micro" 1024)
    R[$side,heap]=$(idle "$bin/idle_heap")
done
bench_quiet
echo "against: $ROUNDS wall-clock rounds each, alternating"
for round in $(seq "$ROUNDS"); do
    for side in old new; do
        bin=$([ $side = old ] && echo "$OLD" || echo "$ROOT")/bench/rust/target/release
        "$bin/micro" --rounds 1 > "$WORK/micro.$side.$round" 2> /dev/null
    done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for side in old new; do
    for size in 64 1024; do
        R[$side,ns$size]=$(for round in $(seq "$ROUNDS"); do ns "$WORK/micro.$side.$round" $size; done | median)
    done
done

bench_done
echo
echo "| measure | $REV | this checkout |"
echo "|---|---|---|"
echo "| instructions per 64 B echo (callgrind) | ${R[old,i64]} | ${R[new,i64]} |"
echo "| instructions per 1024 B echo (callgrind) | ${R[old,i1k]} | ${R[new,i1k]} |"
echo "| ns per 64 B echo (median of $ROUNDS) | ${R[old,ns64]} | ${R[new,ns64]} |"
echo "| ns per 1024 B echo (median of $ROUNDS) | ${R[old,ns1024]} | ${R[new,ns1024]} |"
echo "| idle heap per session, bytes | ${R[old,heap]} | ${R[new,heap]} |"
echo
report "against $REV: instr/echo 64B=${R[old,i64]}->${R[new,i64]} 1024B=${R[old,i1k]}->${R[new,i1k]} idle-heap=${R[old,heap]}->${R[new,heap]}"
