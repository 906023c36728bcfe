//! The one load generator for every server the scripts compare.
//!
//! ```text
//! loadgen ws   --url ws://HOST:PORT/PATH   [--conns 100] [--secs 10] [--warmup 1] [--size 64] [--threads 1]
//!              [--pid SERVER_PID] [--clk-tck 100]
//! loadgen http --url http://HOST:PORT/PATH [same options] [--browser-headers]
//! loadgen sse  --url ws://HOST:PORT/PATH   [same options as ws]
//! loadgen idle --url ws://HOST:PORT/PATH   [--conns 10000] [--hold 10] [--parallel 200]
//! loadgen broadcast --url ws://HOST:PORT/PATH [--conns 1000] [--rounds 200] [--warmup-rounds 20]
//!              [--size 64] [--pid SERVER_PID] [--clk-tck 100]
//! ```
//!
//! `ws`, `http` and `lines` take a comma-separated list of URLs: connection
//! `i` goes to the `i % n`-th (load split over servers, e.g. two regions).
//!
//! - `ws`: `--conns` WebSocket connections, each a closed loop: send one
//!   masked text frame of `--size` bytes, wait for the echo, repeat. After
//!   `--warmup` seconds, completions are counted and their round trips
//!   recorded for `--secs` seconds.
//! - `http`: the same exchange as an HTTP/1.1 keep-alive `POST` per message,
//!   the echo in the response body; the request carries `Host`,
//!   `Content-Type` and `Content-Length` only, or with `--browser-headers`
//!   what Chromium's `fetch` sends (user agent, client hints, origin, …).
//! - `sse`: the same exchange over SPEC §14's fallback: per client one
//!   `GET` event stream on the WebSocket URL and one keep-alive connection
//!   that `POST`s each message to the stream's send URL (answered 204); the
//!   round trip ends when the echo arrives as an event on the stream. A 503
//!   (the script's queue is full) is retried after 1 ms and counted.
//! - `idle`: opens `--conns` WebSocket connections (at most `--parallel`
//!   handshakes at a time), prints `ready <n> failed <m>`, holds them
//!   `--hold` seconds, and exits.
//! - `broadcast`: see [`broadcast`] (`bench/broadcast.sh`): `--conns`
//!   subscribers on a region URL, one trigger connection, and per round the
//!   time from the server's stamp to the last subscriber's receipt.
//!
//! Connections come from source addresses 127.0.0.2 … 127.0.0.51 in turn,
//! so per-address handshake limits and ephemeral ports are not what is measured.
//!
//! `ws`/`http` print `result rate=<msgs/s> p50_us=.. p99_us=.. msgs=.. errors=..
//! client_bytes_per_msg=.. server_bytes_per_msg=.. setup_client_bytes=.. setup_server_bytes=..`:
//! the bytes each side wrote per message (the client counts what it writes and
//! what it reads, which is exactly what the server wrote), and per connection
//! for the handshake. With `--pid`, also `server_cpu_us_per_msg=..
//! server_cpu_pct=..` (utime+stime of `/proc/<pid>/stat` at the window's
//! start and end) and the load generator's own `client_cpu_pct=..`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lsl_websocket_bench::{HEAD_KEY, masked_text, quantile};

mod broadcast;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SOURCES: u8 = 50;

/// What Chromium sends besides `Host` and `Content-Length` with a page's
/// cross-origin `fetch(url, {method: "POST", body: text})` (no cookies).
const BROWSER_HEADERS: &str = "Connection: keep-alive\r\n\
    sec-ch-ua-platform: \"Linux\"\r\n\
    User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
    sec-ch-ua: \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"\r\n\
    Content-Type: text/plain;charset=UTF-8\r\n\
    sec-ch-ua-mobile: ?0\r\n\
    Accept: */*\r\n\
    Origin: http://127.0.0.1:8000\r\n\
    Sec-Fetch-Site: same-site\r\n\
    Sec-Fetch-Mode: cors\r\n\
    Sec-Fetch-Dest: empty\r\n\
    Referer: http://127.0.0.1:8000/\r\n\
    Accept-Encoding: gzip, deflate, br, zstd\r\n\
    Accept-Language: en-US,en;q=0.9\r\n";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ws,
    Http,
    Sse,
    Idle,
    /// One region-scope broadcast to every subscriber per round (`broadcast.rs`).
    Broadcast,
    /// Raw TCP lines (SPEC §13): the URL's path as the first line, then one line per message.
    Lines,
}

#[derive(Clone)]
struct Args {
    mode: Mode,
    addr: SocketAddr,
    host: String,
    path: String,
    /// Every `--url` given: (address, host, path); connection `i` uses the `i % n`-th.
    targets: Vec<(SocketAddr, String, String)>,
    conns: usize,
    secs: f64,
    warmup: f64,
    size: usize,
    threads: usize,
    hold: f64,
    parallel: usize,
    /// The server's process, whose CPU time is read at the window's edges.
    pid: Option<u32>,
    /// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`).
    clk_tck: f64,
    /// `http`: send the headers a browser's `fetch` sends, not the minimum.
    browser_headers: bool,
    /// `broadcast`: measured rounds, and rounds before them.
    rounds: usize,
    warmup_rounds: usize,
}

impl Args {
    /// These arguments with connection `i`'s target as the address.
    fn for_conn(&self, i: usize) -> Args {
        let mut a = self.clone();
        let (addr, host, path) = self.targets[i % self.targets.len()].clone();
        (a.addr, a.host, a.path) = (addr, host, path);
        a
    }
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("ws") => Mode::Ws,
        Some("http") => Mode::Http,
        Some("sse") => Mode::Sse,
        Some("idle") => Mode::Idle,
        Some("broadcast") => Mode::Broadcast,
        Some("lines") => Mode::Lines,
        _ => usage(),
    };
    let mut url = None;
    let mut a = Args {
        mode,
        addr: "127.0.0.1:1".parse().unwrap(),
        host: String::new(),
        path: String::new(),
        targets: Vec::new(),
        conns: match mode {
            Mode::Idle => 10_000,
            Mode::Broadcast => 1000,
            _ => 100,
        },
        secs: 10.0,
        warmup: 1.0,
        size: 64,
        threads: 1,
        hold: 10.0,
        parallel: 200,
        pid: None,
        clk_tck: 100.0,
        browser_headers: false,
        rounds: 200,
        warmup_rounds: 20,
    };
    while let Some(arg) = it.next() {
        if arg == "--browser-headers" {
            a.browser_headers = true;
            continue;
        }
        let value = it.next().unwrap_or_else(|| usage());
        let num = || value.parse::<f64>().unwrap_or_else(|_| usage());
        match arg.as_str() {
            "--url" => url = Some(value.clone()),
            "--conns" => a.conns = num() as usize,
            "--secs" => a.secs = num(),
            "--warmup" => a.warmup = num(),
            "--size" => a.size = num() as usize,
            "--threads" => a.threads = num() as usize,
            "--hold" => a.hold = num(),
            "--parallel" => a.parallel = num() as usize,
            "--pid" => a.pid = Some(num() as u32),
            "--clk-tck" => a.clk_tck = num(),
            "--rounds" => a.rounds = num() as usize,
            "--warmup-rounds" => a.warmup_rounds = num() as usize,
            _ => usage(),
        }
    }
    for url in url.unwrap_or_else(|| usage()).split(',') {
        let rest = url.strip_prefix("ws://").or_else(|| url.strip_prefix("http://")).unwrap_or_else(|| usage());
        let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        a.targets.push((host.parse().unwrap_or_else(|_| usage()), host.to_string(), path));
    }
    a.for_conn(0)
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen ws|http|sse|idle|lines|broadcast --url URL[,URL...] [--conns N] [--secs S] [--warmup S] [--size B] [--threads T] [--pid P]"
    );
    std::process::exit(2)
}

/// A TCP connection from the `i`-th source address.
async fn connect(addr: SocketAddr, i: usize) -> std::io::Result<TcpStream> {
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8));
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Buffered reader over a stream that counts what it reads.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    read: u64,
    written: u64,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn { stream, buf: Vec::with_capacity(4096), start: 0, read: 0, written: 0 }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads more bytes; error at end of stream.
    async fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve(4096);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.read += n as u64;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Reads up to and including the blank line ending an HTTP head; returns it.
    async fn head(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = self.pending().windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending()[..end + 4]).into_owned();
                self.start += end + 4;
                return Ok(head);
            }
            self.fill().await?;
        }
    }

    /// The next data frame's payload length (pings are answered, pongs skipped).
    async fn ws_message(&mut self) -> std::io::Result<usize> {
        Ok(self.ws_payload().await?.len())
    }

    /// The next data frame's payload (pings are answered, pongs skipped).
    async fn ws_payload(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            let p = self.pending();
            if p.len() >= 2 {
                let (opcode, len7) = (p[0] & 0x0f, (p[1] & 0x7f) as usize);
                let (hlen, len) = match len7 {
                    126 if p.len() >= 4 => (4, u16::from_be_bytes([p[2], p[3]]) as usize),
                    127 if p.len() >= 10 => (10, u64::from_be_bytes(p[2..10].try_into().unwrap()) as usize),
                    126 | 127 => (usize::MAX, 0),
                    n => (2, n),
                };
                if hlen != usize::MAX && p.len() >= hlen + len {
                    let payload = p[hlen..hlen + len].to_vec();
                    self.start += hlen + len;
                    match opcode {
                        0x9 => {
                            let mut pong = vec![0x8a, 0x80 | payload.len() as u8, 0, 0, 0, 0];
                            pong.extend_from_slice(&payload);
                            self.write(&pong).await?;
                            continue;
                        }
                        0xa => continue,
                        0x8 => return Err(std::io::Error::other("server closed")),
                        _ => return Ok(payload),
                    }
                }
            }
            self.fill().await?;
        }
    }

    /// The next server-sent event block (heartbeat comments skipped), without its blank line.
    async fn sse_event(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(end) = self.pending().windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.pending()[..end]).into_owned();
                self.start += end + 2;
                if block.starts_with(':') {
                    continue;
                }
                return Ok(block);
            }
            self.fill().await?;
        }
    }

    /// The next message line's length (`\\ping` is answered, `\\pong` skipped).
    async fn line_message(&mut self) -> std::io::Result<usize> {
        loop {
            if let Some(end) = self.pending().iter().position(|&b| b == b'\n') {
                let line = self.pending()[..end].to_vec();
                self.start += end + 1;
                match &line[..] {
                    b"\\ping" => self.write(b"\\pong\n").await?,
                    b"\\pong" => {}
                    l if l.starts_with(b"\\close") || l.starts_with(b"\\error") => {
                        return Err(std::io::Error::other(String::from_utf8_lossy(l).into_owned()));
                    }
                    _ => return Ok(line.len()),
                }
                continue;
            }
            self.fill().await?;
        }
    }

    /// The next HTTP response's body length (keep-alive).
    async fn http_response(&mut self) -> std::io::Result<usize> {
        let head = self.head().await?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(std::io::Error::other(format!("bad response: {}", head.lines().next().unwrap_or(""))));
        }
        let len = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .ok_or_else(|| std::io::Error::other("no content-length"))?;
        while self.pending().len() < len {
            self.fill().await?;
        }
        self.start += len;
        Ok(len)
    }
}

/// An SSE client: the stream and the connection that POSTs, with the send path.
async fn sse_open(args: &Args, i: usize) -> std::io::Result<(Conn, Conn, String)> {
    let mut stream = Conn::new(connect(args.addr, i).await?);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
        args.path, args.host
    );
    stream.write(request.as_bytes()).await?;
    let head = stream.head().await?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("stream refused: {}", head.lines().next().unwrap_or(""))));
    }
    let first = stream.sse_event().await?;
    let send = first
        .split("\"send\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| std::io::Error::other(format!("no send URL in {first:?}")))?
        .to_string();
    let post = Conn::new(connect(args.addr, i).await?);
    Ok((stream, post, send))
}

async fn ws_open(args: &Args, i: usize) -> std::io::Result<Conn> {
    let mut c = Conn::new(connect(args.addr, i).await?);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {HEAD_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.path, args.host
    );
    c.write(request.as_bytes()).await?;
    let head = c.head().await?;
    if !head.starts_with("HTTP/1.1 101") {
        return Err(std::io::Error::other(format!("handshake refused: {}", head.lines().next().unwrap_or(""))));
    }
    Ok(c)
}

/// What one connection measured inside the window.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    client_bytes: u64,
    server_bytes: u64,
    setup_client: u64,
    setup_server: u64,
    /// `sse`: POSTs answered 503 and sent again.
    retries: u64,
    error: Option<String>,
}

struct Window {
    start: Instant,
    end: Instant,
}

async fn closed_loop(args: Arc<Args>, i: usize, window: Arc<Window>, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let args = args.for_conn(i);
    if let Err(e) = closed_loop_inner(&args, i, &window, &stop, &mut tally).await {
        tally.error = Some(e.to_string());
    }
    tally
}

async fn closed_loop_inner(
    args: &Args,
    i: usize,
    window: &Window,
    stop: &AtomicBool,
    tally: &mut Tally,
) -> std::io::Result<()> {
    let payload: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
    if args.mode == Mode::Sse {
        return sse_loop(args, i, window, stop, tally, &payload).await;
    }
    let (mut c, message) = match args.mode {
        Mode::Http if args.browser_headers => {
            let mut m = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\n{BROWSER_HEADERS}Content-Length: {}\r\n\r\n",
                args.path, args.host, args.size
            )
            .into_bytes();
            m.extend_from_slice(&payload);
            (Conn::new(connect(args.addr, i).await?), m)
        }
        Mode::Http => {
            let mut m = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                args.path, args.host, args.size
            )
            .into_bytes();
            m.extend_from_slice(&payload);
            (Conn::new(connect(args.addr, i).await?), m)
        }
        Mode::Lines => {
            let mut c = Conn::new(connect(args.addr, i).await?);
            c.write(format!("{}\n", args.path).as_bytes()).await?;
            let mut m = payload.clone();
            m.push(b'\n');
            (c, m)
        }
        _ => (ws_open(args, i).await?, masked_text(args.size)),
    };
    tally.setup_client = c.written;
    tally.setup_server = c.read - c.pending().len() as u64;
    while !stop.load(Relaxed) {
        let (w0, r0) = (c.written, c.read - c.pending().len() as u64);
        let sent = Instant::now();
        c.write(&message).await?;
        let len = match args.mode {
            Mode::Http => c.http_response().await?,
            Mode::Lines => c.line_message().await?,
            _ => c.ws_message().await?,
        };
        let done = Instant::now();
        if len != args.size {
            return Err(std::io::Error::other(format!("echo of {len} bytes, sent {}", args.size)));
        }
        if done >= window.start && done < window.end {
            tally.latencies.push((done - sent).as_nanos() as u64);
            tally.client_bytes += c.written - w0;
            tally.server_bytes += c.read - c.pending().len() as u64 - r0;
        }
    }
    Ok(())
}

async fn sse_loop(
    args: &Args,
    i: usize,
    window: &Window,
    stop: &AtomicBool,
    tally: &mut Tally,
    payload: &[u8],
) -> std::io::Result<()> {
    let (mut stream, mut post, send) = sse_open(args, i).await?;
    tally.setup_client = stream.written;
    tally.setup_server = stream.read - stream.pending().len() as u64;
    let mut message =
        format!("POST {send} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", args.host, args.size).into_bytes();
    message.extend_from_slice(payload);
    while !stop.load(Relaxed) {
        let (w0, r0) = (post.written, post.read - post.pending().len() as u64);
        let s0 = stream.read - stream.pending().len() as u64;
        let sent = Instant::now();
        loop {
            post.write(&message).await?;
            let head = post.head().await?;
            if head.starts_with("HTTP/1.1 204") {
                break;
            }
            if head.starts_with("HTTP/1.1 503") {
                // The script's queue is full: its Connection: close ends this one.
                tally.retries += 1;
                post = Conn::new(connect(args.addr, i).await?);
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            return Err(std::io::Error::other(format!("POST answered {}", head.lines().next().unwrap_or(""))));
        }
        let event = stream.sse_event().await?;
        let done = Instant::now();
        let data = event.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("");
        if data.len() != args.size + 2 {
            return Err(std::io::Error::other(format!("echo event {event:?}")));
        }
        if done >= window.start && done < window.end {
            tally.latencies.push((done - sent).as_nanos() as u64);
            tally.client_bytes += post.written - w0;
            tally.server_bytes +=
                post.read - post.pending().len() as u64 - r0 + stream.read - stream.pending().len() as u64 - s0;
        }
    }
    Ok(())
}

async fn load(args: Args) {
    let args = Arc::new(args);
    let t0 = Instant::now() + Duration::from_millis(200);
    let window = Arc::new(Window {
        start: t0 + Duration::from_secs_f64(args.warmup),
        end: t0 + Duration::from_secs_f64(args.warmup + args.secs),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> =
        (0..args.conns).map(|i| tokio::spawn(closed_loop(args.clone(), i, window.clone(), stop.clone()))).collect();
    let cpu = |pid: Option<u32>| pid.map(|p| cpu_ticks(&format!("/proc/{p}/stat"))).unwrap_or(0);
    tokio::time::sleep_until(window.start.into()).await;
    let (server0, client0) = (cpu(args.pid), cpu_ticks("/proc/self/stat"));
    tokio::time::sleep_until(window.end.into()).await;
    let (server1, client1) = (cpu(args.pid), cpu_ticks("/proc/self/stat"));
    stop.store(true, Relaxed);
    let mut all = Vec::new();
    let (mut cb, mut sb, mut setup_c, mut setup_s, mut errors, mut retries) = (0, 0, 0, 0, 0, 0);
    for task in tasks {
        let t = match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(t)) => t,
            _ => {
                errors += 1;
                continue;
            }
        };
        if let Some(e) = &t.error {
            if errors < 3 {
                eprintln!("loadgen: connection error: {e}");
            }
            errors += 1;
        }
        all.extend_from_slice(&t.latencies);
        cb += t.client_bytes;
        sb += t.server_bytes;
        setup_c += t.setup_client;
        setup_s += t.setup_server;
        retries += t.retries;
    }
    all.sort_unstable();
    let n = all.len() as u64;
    let per = |x: u64| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    let conns = args.conns as f64;
    println!(
        "result rate={:.0} p50_us={:.1} p99_us={:.1} msgs={} errors={} client_bytes_per_msg={:.1} \
         server_bytes_per_msg={:.1} setup_client_bytes={:.0} setup_server_bytes={:.0} retries={}",
        n as f64 / args.secs,
        quantile(&all, 0.50) as f64 / 1e3,
        quantile(&all, 0.99) as f64 / 1e3,
        n,
        errors,
        per(cb),
        per(sb),
        setup_c as f64 / conns,
        setup_s as f64 / conns,
        retries,
    );
    let secs = |ticks: u64| ticks as f64 / args.clk_tck;
    if args.pid.is_some() {
        let server = secs(server1 - server0);
        println!(
            "result server_cpu_us_per_msg={:.2} server_cpu_pct={:.0}",
            if n == 0 { 0.0 } else { server * 1e6 / n as f64 },
            server / args.secs * 100.0
        );
    }
    println!("result client_cpu_pct={:.0}", secs(client1 - client0) / args.secs * 100.0);
}

/// utime + stime of a `/proc/<pid>/stat` file, in clock ticks (0 if unreadable).
fn cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else { return 0 };
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15.
    let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

async fn idle(args: Args) {
    let args = Arc::new(args);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.parallel));
    let opened = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.conns)
        .map(|i| {
            let (args, gate, opened) = (args.clone(), gate.clone(), opened.clone());
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.expect("open semaphore");
                let result = ws_open(&args, i).await;
                drop(permit);
                let n = opened.fetch_add(1, Relaxed) + 1;
                if n % 2000 == 0 {
                    eprintln!("loadgen: {n} connections after {:.1} s", started.elapsed().as_secs_f64());
                }
                result
            })
        })
        .collect();
    let mut held = Vec::with_capacity(args.conns);
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(c)) => held.push(c),
            Ok(Err(e)) => {
                if failed < 3 {
                    eprintln!("loadgen: connection failed: {e}");
                }
                failed += 1;
            }
            Err(_) => failed += 1,
        }
    }
    println!("ready {} failed {failed} secs {:.1}", held.len(), started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_secs_f64(args.hold)).await;
    // Still connected? A server that dropped idle connections shows here.
    let mut alive = 0;
    for c in &mut held {
        let mut probe = [0u8; 64];
        match c.stream.try_read(&mut probe) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => alive += 1,
            Ok(n) if n > 0 => alive += 1,
            _ => {}
        }
    }
    println!("alive {alive}");
}

fn main() {
    let args = parse_args();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .expect("a runtime");
    match args.mode {
        Mode::Idle => runtime.block_on(idle(args)),
        Mode::Broadcast => runtime.block_on(broadcast::run(args)),
        _ => runtime.block_on(load(args)),
    }
}
