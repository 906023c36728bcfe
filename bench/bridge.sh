#!/usr/bin/env bash
# The Second Life bridge (sl_bridge) against the crate's native WebSocket URL,
# over 127.0.0.1: sequential round trips of a 64-byte message (500 after 50
# of warm-up, one client), p50/p99/mean, and HTTP requests per client message:
#   - native websocket echo: the echo_server example's object URL;
#   - bridge echo: client -> sl_bridge -> HTTP-in (this crate, tokio adapter)
#     -> bridge/bridge.lsl in lummao -> its llHTTPResponse -> client;
#   - bridge push: the same, but the script answers by llHTTPRequest to the push URL;
#   - a burst of 100 clients x 20 messages: how many requests batching saves.
# The script runs in Python (lummao), so the bridge rows include its cost;
# on the grid the script's own event latency replaces it.
#
#   bench/bridge.sh        (needs scripts/setup.sh for .venv with lummao)
#
# Writes bench/results/bridge.tsv and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh > /dev/null
mkdir -p bench/results
echo "bridge: building (release)" >&2
cargo build --release --quiet --features tokio --example echo_server
ECHO_SERVER_BIN="$(pwd)/target/release/examples/echo_server" \
    cargo test --release --quiet --features bridge --test sl_bridge_bench -- --ignored --nocapture --test-threads 1 2> bench/results/bridge.err \
    | grep -v -e '^running ' -e '^test ' -e '^$' -e '^\.$' -e '^test result' > bench/results/bridge.tsv
column -t -s $'\t' bench/results/bridge.tsv
