#!/usr/bin/env bash
# Every test of the crate, on a machine with only the Rust toolchain: first
# installs what the tests need and is missing (scripts/setup.sh: Chromium and
# chromedriver for the browser tests, curl for the HTTP-in tests), then runs `cargo test` with every
# feature. This is the README's second command and what .ci/run runs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "test: setup (what the tests need beyond Rust)"
scripts/setup.sh
echo "test: cargo test --all-features --no-fail-fast"
cargo test --all-features --no-fail-fast "$@"
echo "test: all passed"
