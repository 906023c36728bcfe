# Shared by bench/*.sh: common flags, the load check, where outputs go, and
# building everything the measurements run, from a clean clone.
# Sourced with the repository root as the working directory.
#
# Common flags (every script that calls bench_setup takes them):
#   --out DIR       raw outputs, tables and plots go there (default target/bench/NAME;
#                   a run never writes into the work tree outside target/)
#   --keep          after a clean run, copy the log (NAME.out, with date, commit and
#                   load before/after) and the script's kept files into bench/results/
#                   (and plots into bench/): the figures PERFORMANCE.md cites
#   --ignore-load   development run on a busy machine: no load refusal, the output is
#                   marked NOT A REPORT and every report line (ratio …, idle …) is
#                   printed with the prefix "NOT-A-REPORT " so no tool reads it as one
#   --settle SECS   wait at most this long (default 300) for the 1-minute load to fall
#                   to 1.0 before measuring (the build, or the previous script, raises it)
#
# The load rule: the 1-minute load average (/proc/loadavg) right before the
# measurements must be at most 1.0, else the script exits 3 without measuring.
# It is printed before and after (`load before:` / `load after:`).

OUT="" KEEP=0 IGNORE_LOAD=0 SETTLE=300 BENCH_SHIFT=0

# bench_flag "$@": consumes one common flag; BENCH_SHIFT says how many words.
# Use in a script's argument loop: --out | --keep | --ignore-load | --settle) bench_flag "$@"; shift "$BENCH_SHIFT" ;;
bench_flag() {
    case "$1" in
        --out) OUT=$2; BENCH_SHIFT=2 ;;
        --keep) KEEP=1; BENCH_SHIFT=1 ;;
        --ignore-load) IGNORE_LOAD=1; BENCH_SHIFT=1 ;;
        --settle) SETTLE=$2; BENCH_SHIFT=2 ;;
        *) return 1 ;;
    esac
}

BENCH_COMMON_USAGE="[--out DIR] [--keep] [--ignore-load] [--settle SECS]"

load1() { cut -d' ' -f1 /proc/loadavg; }
load3() { cut -d' ' -f1-3 /proc/loadavg; }
# above LOAD LIMIT: true when LOAD > LIMIT.
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }

# bench_setup NAME ARGS...: ROOT, BIN (the bench crate's release binaries),
# OUT and RESULTS (both the output directory), a scratch WORK directory, and
# a trap that stops $SERVER_PID and removes WORK on exit. The first call runs
# the script again with its output logged to OUT/NAME.out (and, with --keep,
# copies the kept files once it succeeded), so call it after parsing the
# arguments and pass it the script's original ones.
bench_setup() {
    BENCH_NAME=$1
    shift
    ROOT=$(pwd)
    BIN=$ROOT/bench/rust/target/release
    [ -n "$OUT" ] || OUT=$ROOT/target/bench/$BENCH_NAME
    mkdir -p "$OUT"
    OUT=$(cd "$OUT" && pwd)
    RESULTS=$OUT
    REPORT_PREFIX=""
    [ "$IGNORE_LOAD" = 1 ] && REPORT_PREFIX="NOT-A-REPORT "
    if [ -z "${BENCH_LOGGED:-}" ]; then
        if [ "$KEEP" = 1 ] && [ "$IGNORE_LOAD" = 1 ]; then
            echo "$BENCH_NAME: --keep and --ignore-load exclude each other (a development run is not kept)" >&2
            exit 2
        fi
        local load
        load=$(load1)
        if above "$load" 1.0 && [ "$IGNORE_LOAD" != 1 ] && [ "$SETTLE" = 0 ]; then
            echo "$BENCH_NAME: the 1-minute load is $load (above 1.0): not measuring. Wait for a quiet machine, or --ignore-load for a development run." >&2
            exit 3
        fi
        : > "$OUT/keep.list"
        set +e
        BENCH_LOGGED=1 "$ROOT/bench/$BENCH_NAME.sh" "$@" 2>&1 | tee "$OUT/$BENCH_NAME.out"
        local rc=${PIPESTATUS[0]}
        set -e
        if [ "$rc" = 0 ] && [ "$KEEP" = 1 ]; then
            bench_keep
        fi
        exit "$rc"
    fi
    WORK=$(mktemp -d)
    SERVER_PID=""
    trap bench_cleanup EXIT
    echo "$BENCH_NAME: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'), $(nproc) cores, outputs in $OUT"
    if [ "$IGNORE_LOAD" = 1 ]; then
        echo "$BENCH_NAME: --ignore-load: DEVELOPMENT RUN, NOT A REPORT (report lines are prefixed NOT-A-REPORT)"
    fi
}

# bench_quiet: right before measuring: waits up to SETTLE seconds for the
# 1-minute load to reach 1.0, prints `load before:`, and exits 3 (refusing
# to report) if it stays above. With --ignore-load it only prints.
bench_quiet() {
    local waited=0
    while above "$(load1)" 1.0 && [ "$IGNORE_LOAD" != 1 ] && [ "$waited" -lt "$SETTLE" ]; do
        [ $((waited % 30)) = 0 ] && echo "$BENCH_NAME: waiting for the 1-minute load to fall to 1.0 (now $(load1), ${waited}/${SETTLE} s)"
        sleep 5
        waited=$((waited + 5))
    done
    LOAD_BEFORE=$(load3)
    echo "load before: $LOAD_BEFORE (1, 5, 15 minutes; $(date -u +%H:%M:%S) UTC)"
    if above "$(load1)" 1.0 && [ "$IGNORE_LOAD" != 1 ]; then
        echo "$BENCH_NAME: the 1-minute load is $(load1), above 1.0: refusing to report. Run it on a quiet machine (or --ignore-load for a development run)." >&2
        exit 3
    fi
}

# bench_done: prints `load after:` (the run's own server and load generator
# raise it towards 2 on two cores; more than that means others ran too).
bench_done() {
    LOAD_AFTER=$(load3)
    echo "load after: $LOAD_AFTER ($(date -u +%H:%M:%S) UTC)"
}

# report LINE: prints a report line (ratio …, idle …) as tools read it, or
# prefixed NOT-A-REPORT in a development run.
report() {
    echo "${REPORT_PREFIX}$*"
}

# keep FILE [DEST]: with --keep, FILE (under OUT) is copied to bench/results/
# (or DEST, relative to the repository root) once the run succeeded.
keep() {
    echo "$1 ${2:-bench/results/$(basename "$1")}" >> "$OUT/keep.list"
}

bench_keep() {
    mkdir -p "$ROOT/bench/results"
    cp "$OUT/$BENCH_NAME.out" "$ROOT/bench/results/$BENCH_NAME.out"
    echo "$BENCH_NAME: kept bench/results/$BENCH_NAME.out"
    local src dest
    while read -r src dest; do
        [ -f "$src" ] || continue
        case "$dest" in
            *.tsv) { grep -m1 '^load before' "$OUT/$BENCH_NAME.out" | sed 's/^/# /'
                     grep -m1 '^load after' "$OUT/$BENCH_NAME.out" | sed 's/^/# /'
                     head -1 "$OUT/$BENCH_NAME.out" | sed 's/^/# /'
                     cat "$src"; } > "$ROOT/$dest" ;;
            *) cp "$src" "$ROOT/$dest" ;;
        esac
        echo "$BENCH_NAME: kept $dest"
    done < "$OUT/keep.list"
}

bench_cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill $SERVER_PID 2>/dev/null || true
        wait $SERVER_PID 2>/dev/null || true
    fi
    rm -rf "$WORK"
}

# mean_of FILE SERVER COLUMN: the mean of COLUMN over FILE's lines for SERVER ("" if none).
mean_of() {
    grep -v '^#' "$1" | awk -v n="$2" -v f="$3" '$1 == n { s += $f; k++ } END { if (k) printf "%.4f", s / k }'
}

# div A B [FORMAT]: A / B, or "n/a" when either is missing or B is 0.
div() {
    awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf f "\n", a / b }'
}

# build_all [--no-node]: the echo_server example and the bench crate in release
# mode; Node's ws from bench/node/package-lock.json (npm ci); a font for the plot.
build_all() {
    cargo build --quiet --release --features tokio --example echo_server
    cargo build --quiet --release --manifest-path bench/rust/Cargo.toml --bins
    if [ "${1:-}" != --no-node ]; then
        if ! command -v node > /dev/null; then
            echo "bench: node is needed for the ws server (Node.js 18 or later)" >&2
            exit 1
        fi
        if [ ! -d bench/node/node_modules/ws ]; then
            echo "bench: npm ci in bench/node"
            (cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
        fi
    fi
    if ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf > /dev/null 2>&1 \
        && ! ls /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf > /dev/null 2>&1; then
        echo "bench: installing Debian's fonts-dejavu-core for the plot"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq fonts-dejavu-core
    fi
}
