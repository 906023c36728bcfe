#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target in fuzz/ for 30 s (set
# FUZZ_SECONDS to change; FUZZ_JOBS=2 runs two targets at a time, one per
# core; FUZZ_TARGETS="a b" for a subset; -max_len 8192, 12000 for
# handshake), starting from the committed seed
# corpus (fuzz/seeds/<target>) and the local corpus (fuzz/corpus/<target>,
# git-ignored). Prints one line per target and exits non-zero if any target
# crashed (the input is kept in fuzz/artifacts/<target>/) or did not build.
#
# Needs cargo-fuzz (installed if missing) and uses RUSTC_BOOTSTRAP=1 so the
# stable toolchain accepts the sanitizer flags.
set -u
cd "$(dirname "$0")/../fuzz" || exit 2
secs=${FUZZ_SECONDS:-30}
targets=(${FUZZ_TARGETS:-handshake frames envelope region_ops http_in sse lines proxy})
jobs=${FUZZ_JOBS:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it"
    cargo install cargo-fuzz --locked || { echo "could not install cargo-fuzz"; exit 2; }
fi
export RUSTC_BOOTSTRAP=1

# Build everything first, so the time limit is spent fuzzing.
if ! cargo fuzz build >/tmp/fuzz-smoke-build.log 2>&1; then
    tail -n 30 /tmp/fuzz-smoke-build.log
    echo "fuzz targets did not build"
    exit 2
fi

# run_one TARGET: one run; prints its line, returns 1 on a crash.
run_one() {
    local target=$1 log max_len=8192
    [ "$target" = handshake ] && max_len=12000
    mkdir -p "corpus/$target"
    log=$(mktemp "/tmp/fuzz-smoke-$target.XXXXXX")
    if cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
        cov=$(grep -o 'cov: [0-9]*' <<<"$done_line" | cut -d' ' -f2)
        ft=$(grep -o 'ft: [0-9]*' <<<"$done_line" | cut -d' ' -f2)
        corp=$(grep -o 'corp: [0-9]*' <<<"$done_line" | cut -d' ' -f2)
        printf '%-11s ok     %ss  %s execs  cov %s  ft %s  corpus %s\n' \
            "$target" "$secs" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
        rm -f "$log"
    else
        artifact=$(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1)
        printf '%-11s CRASH  input %s  log %s\n' "$target" "${artifact:-?}" "$log"
        return 1
    fi
}

status=0
running=0
for target in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
    run_one "$target" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit "$status"
