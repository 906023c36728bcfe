#!/usr/bin/env python3
"""Memory per connection of echo_server, alone and behind nginx (docs/deploy.md).

Usage: python3 docs/measure_deploy.py PATH/TO/echo_server [N [KIND]]

Starts the example (--handshakes-per-second high, and each client from its
own 127.1.x.y, so neither the rate limit nor nginx's limit_conn is what is
measured) and an nginx with docs/nginx/lsl-websocket.conf (plain
and TLS listeners; a throwaway self-signed certificate from openssl),
then reads VmRSS of both processes from /proc before and while holding N
connections of each kind, all on 127.0.0.1:
  - idle WebSocket sessions straight to echo_server
  - idle WebSocket sessions through nginx, plain and with TLS ending there
  - idle SSE streams straight to echo_server
  - connections that sent 4 KiB of an unfinished request head (a slow
    handshake; the core drops them after Config::handshake_timeout, 10 s)
Each kind is closed before the next. Loopback only, bounded in count and time.
"""
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def head_of(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"closed before a head: {buf!r}")
        buf += chunk
    return buf


COUNT = [0]
# The throwaway certificate is not checked: only memory is measured here.
TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


def connect(addr):
    """A connection from its own loopback source address (127.1.x.y): nginx's
    limit_conn (256 per client address) must not be what is measured."""
    COUNT[0] += 1
    s = socket.socket()
    s.settimeout(10)
    s.bind((f"127.1.{COUNT[0] // 200}.{COUNT[0] % 200 + 1}", 0))
    s.connect(addr)
    return s


def ws(addr, path, tls=False):
    s = connect(addr)
    if tls:
        s = TLS.wrap_socket(s, server_hostname="t")
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = head_of(s)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


def sse(addr, path):
    s = connect(addr)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = head_of(s)
    assert b" 200 " in head.split(b"\r\n")[0], head
    return s


def slow_head(addr, path):
    s = connect(addr)
    filler = "".join(f"X-Filler-{i}: {'a' * 40}\r\n" for i in range(75))  # about 4 KiB
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{filler}".encode())
    return s


def measure(what, n, open_one, pids):
    before = {name: rss_kib(pid) for name, pid in pids.items()}
    started = time.monotonic()
    socks = [open_one() for _ in range(n)]
    took = time.monotonic() - started
    # Sessions idle for 30 s get pinged, and this client does not answer:
    # the figures count only if every connection is still there.
    assert took < 25, f"opening {n} took {took:.0f} s"
    time.sleep(1.0)
    after = {name: rss_kib(pid) for name, pid in pids.items()}
    for name in pids:
        delta = (after[name] - before[name]) * 1024 / n
        print(f"{what:32} {name:12} {before[name] / 1024:7.1f} MiB -> {after[name] / 1024:7.1f} MiB"
              f"  {delta:8.0f} B per connection  (n={n})")
    for s in socks:
        s.close()


def start(binary, n, tmp):
    """A fresh echo_server and nginx in front of it: (processes, sim address, nginx address, URL path)."""
    sim = subprocess.Popen([binary, "--bind", "127.0.0.1:0", "--handshakes-per-second", "1000000",
                            "--sessions-per-url", str(n + 10)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = None
    while url is None:
        line = sim.stdout.readline()
        if not line:
            raise RuntimeError("echo_server exited")
        if line.startswith("object-url "):
            url = line.split()[1]
    m = re.match(r"ws://([^/]+)(/.*)", url)
    host, port = m.group(1).rsplit(":", 1)
    front, tls = free_port(), free_port()
    conf = open(os.path.join(HERE, "nginx", "lsl-websocket.conf")).read()
    values = {"LISTEN": f"127.0.0.1:{front}", "TLS_LISTEN": f"127.0.0.1:{tls}", "SERVER_NAME": "t",
              "SIMULATOR": m.group(1), "CERT": f"{tmp}/cert.pem", "KEY": f"{tmp}/key.pem"}
    lines = []
    for line in conf.split("\n"):
        if not line.lstrip().startswith("#"):
            for name, value in values.items():
                line = line.replace("{{%s}}" % name, value)
        lines.append(line)
    open(f"{tmp}/site.conf", "w").write("\n".join(lines))
    open(f"{tmp}/nginx.conf", "w").write(
        f"daemon off; master_process off; worker_processes 1; pid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/error.log; worker_rlimit_nofile 20000;\n"
        f"events {{ worker_connections 16384; }}\n"
        f"http {{ access_log off; client_body_temp_path {tmp}/b; proxy_temp_path {tmp}/p;"
        f" fastcgi_temp_path {tmp}/f; uwsgi_temp_path {tmp}/u; scgi_temp_path {tmp}/s;"
        f" include {tmp}/site.conf; }}\n")
    nginx = subprocess.Popen(["/usr/sbin/nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", front), timeout=1).close()
            socket.create_connection(("127.0.0.1", tls), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(0.5)
    return [sim, nginx], (host, int(port)), ("127.0.0.1", front, tls), m.group(2)


def main():
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    tmp = tempfile.mkdtemp(prefix="lslws-measure-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=t",
                    "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem"], check=True, capture_output=True)
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    kinds = [
        ("idle WebSocket, direct", n, lambda sim, front, path: ws(sim, path)),
        ("idle WebSocket, through nginx", n, lambda sim, front, path: ws(front[:2], path)),
        ("idle WebSocket, TLS at nginx", n, lambda sim, front, path: ws((front[0], front[2]), path, tls=True)),
        ("idle SSE stream, direct", n, lambda sim, front, path: sse(sim, path)),
        ("idle SSE stream, through nginx", n, lambda sim, front, path: sse(front[:2], path)),
        # Under Config::max_handshakes (1024).
        ("4 KiB unfinished head, direct", min(n, 1000), lambda sim, front, path: slow_head(sim, path)),
    ]
    # Each kind against freshly started processes: freed memory is not reused across kinds.
    for what, count, open_one in kinds:
        if only not in what:
            continue
        procs, sim, front, path = start(binary, count, tmp)
        try:
            measure(what, count, lambda: open_one(sim, front, path), {"echo_server": procs[0].pid, "nginx": procs[1].pid})
        finally:
            for p in procs:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
