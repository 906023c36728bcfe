#!/usr/bin/env bash
# Installs what the tests need beyond Rust: Debian's chromium and
# chromium-driver (browser tests), curl (HTTP-in end-to-end tests), socat
# (the line client of tests/e2e_lines.rs), and nginx with its stream module
# and haproxy (the reverse proxies of tests/e2e_proxy.rs).
# Idempotent: does nothing when every binary is already there.
set -euo pipefail

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
