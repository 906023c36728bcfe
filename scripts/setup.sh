#!/usr/bin/env bash
# Installs what the tests need beyond Rust: Debian's chromium and
# chromium-driver (browser tests), curl (HTTP-in end-to-end tests) and socat
# (the line client of tests/e2e_lines.rs).
# Idempotent: does nothing when every binary is already there.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v socat >/dev/null 2>&1 || need+=(socat)

if [ ${#need[@]} -eq 0 ]; then
    echo "setup: chromium, chromedriver, curl and socat present"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "setup: installing ${need[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
chromium --version
chromedriver --version
curl --version | head -n 1
socat -V | grep -m1 "socat version"
