# Shared by bench/*.sh: builds everything the measurements run, from a clean clone.
# Sourced with the repository root as the working directory.

# bench_setup: ROOT, BIN (the bench crate's release binaries), RESULTS (created),
# a scratch WORK directory, and a trap that stops $SERVER_PID and removes WORK on exit.
bench_setup() {
    ROOT=$(pwd)
    BIN=$ROOT/bench/rust/target/release
    RESULTS=$ROOT/bench/results
    mkdir -p "$RESULTS"
    WORK=$(mktemp -d)
    SERVER_PID=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
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
