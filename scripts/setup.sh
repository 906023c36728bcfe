#!/usr/bin/env bash
# Installs what the tests need beyond Rust: Debian's chromium and
# chromium-driver (browser tests), curl (HTTP-in end-to-end tests), socat
# (the line client of tests/e2e_lines.rs), and nginx with its stream module
# and haproxy (the reverse proxies of tests/e2e_proxy.rs).
# Idempotent: does nothing when every binary is already there.
set -euo pipefail

# ---- begin sl_bridge block: lummao (runs bridge/bridge.lsl in tests/e2e_sl_bridge.rs) ----
# A Python virtual environment at .venv (gitignored) with lummao, created when missing.
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! "$root/.venv/bin/python" -c "import lummao" >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
        s=""; [ "$(id -u)" -ne 0 ] && s="sudo"
        echo "setup: installing python3 and python3-venv"
        $s apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $s apt-get install -y -qq --no-install-recommends python3 python3-venv
    fi
    echo "setup: creating .venv with lummao"
    python3 -m venv "$root/.venv"
    "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check "lummao==0.5.2"
fi
# ---- end sl_bridge block ----

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v socat >/dev/null 2>&1 || need+=(socat)
# Debian puts both in /usr/sbin, which a non-root PATH may lack.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || need+=(haproxy)

if [ ${#need[@]} -eq 0 ]; then
    echo "setup: chromium, chromedriver, curl, socat, nginx (stream) and haproxy present"
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
PATH="$PATH:/usr/sbin" nginx -v
PATH="$PATH:/usr/sbin" haproxy -v | head -n 1
