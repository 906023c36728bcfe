//! The load test behind `bench/load.sh`: many concurrent connections to one
//! echo URL, every echo checked.
//!
//! ```text
//! load --url ws://HOST:PORT/PATH [--conns 10000] [--messages 1000000] [--window 4] [--size 64]
//!      [--parallel 256] [--deadline 300] [--stall 60] [--progress 5] [--threads 1] [--pid SERVER_PID]
//!      [--clk-tck 100]
//! ```
//!
//! 1. Opens `--conns` WebSocket connections (at most `--parallel` handshakes
//!    at a time), from source addresses 127.0.0.2 … 127.0.0.51 in turn, so
//!    neither one address's ephemeral ports nor its handshake budget is what
//!    limits the count.
//! 2. Holds them idle for two seconds and reads the server's `VmRSS`
//!    (`/proc/<pid>/status`, with `--pid`) before and with them: the RSS per
//!    idle connection.
//! 3. Sends `--messages` text messages in all, spread evenly over the
//!    connections; each connection keeps up to `--window` of its messages in
//!    flight. Every message is `"<connection id> <sequence number> "` padded
//!    with letters to `--size` bytes, so each echo tells whose it is:
//!    - `misrouted`: an echo carrying another connection's id;
//!    - `reordered`: an echo whose sequence number is below one already
//!      echoed on that connection;
//!    - `lost`: a message sent and not echoed when its connection finished
//!      (all echoes in, the connection failed, nothing arrived for `--stall`
//!      seconds, or the global `--deadline` passed);
//!    - `corrupt`: an echo that is not byte for byte a message its connection
//!      sent, or a second echo of the same message.
//!
//! Progress goes to stdout every `--progress` seconds. Then: messages/s
//! (echoes over the traffic phase), p50/p99 round trip (send to echo, with
//! the window's queueing), the CPU time the server and the generator used in
//! the traffic phase, the server's peak RSS (`VmHWM`), and as the last
//! line `lost=<n> misrouted=<n> reordered=<n> connections=<n> messages=<n>`
//! (connections opened, messages sent). Exits 0 only when lost, misrouted,
//! reordered and corrupt are 0, every connection opened and every message was sent.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use lsl_websocket_bench::{HEAD_KEY, quantile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout_at;

/// Source addresses 127.0.0.2 … 127.0.0.(1 + SOURCES).
const SOURCES: usize = 50;

#[derive(Clone)]
struct Args {
    addr: SocketAddr,
    host: String,
    path: String,
    conns: usize,
    messages: u64,
    window: usize,
    size: usize,
    parallel: usize,
    deadline: f64,
    stall: f64,
    progress: f64,
    threads: usize,
    pid: Option<u32>,
    /// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`).
    clk_tck: f64,
}

const USAGE: &str = "usage: load --url ws://HOST:PORT/PATH [--conns N] [--messages N] [--window W] [--size B] \
                     [--parallel P] [--deadline S] [--stall S] [--progress S] [--threads T] [--pid PID] [--clk-tck HZ]";

fn usage(why: &str) -> ! {
    eprintln!("load: {why}\n{USAGE}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut url = None;
    let mut a = Args {
        addr: "127.0.0.1:1".parse().unwrap(),
        host: String::new(),
        path: String::new(),
        conns: 10_000,
        messages: 1_000_000,
        window: 4,
        size: 64,
        parallel: 256,
        deadline: 300.0,
        stall: 60.0,
        progress: 5.0,
        threads: 1,
        pid: None,
        clk_tck: 100.0,
    };
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        let num = || match value.parse::<f64>() {
            Ok(n) if n > 0.0 => n,
            _ => usage(&format!("{arg}: not a positive number: {value}")),
        };
        match arg.as_str() {
            "--url" => url = Some(value.clone()),
            "--conns" => a.conns = num() as usize,
            "--messages" => a.messages = num() as u64,
            "--window" => a.window = num() as usize,
            "--size" => a.size = num() as usize,
            "--parallel" => a.parallel = num() as usize,
            "--deadline" => a.deadline = num(),
            "--stall" => a.stall = num(),
            "--progress" => a.progress = num(),
            "--threads" => a.threads = num() as usize,
            "--pid" => a.pid = Some(num() as u32),
            "--clk-tck" => a.clk_tck = num(),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is needed"));
    let rest = url.strip_prefix("ws://").unwrap_or_else(|| usage("only ws:// URLs"));
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    a.addr = host.parse().unwrap_or_else(|_| usage("the URL's host must be IP:PORT"));
    a.host = host.to_string();
    a.path = path;
    // "<id> <seq> " needs room; the cap of the server (2048 by default) is its business.
    a.size = a.size.max(24);
    a
}

/// A TCP connection from the `i`-th source address.
async fn connect(addr: SocketAddr, i: usize) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if addr.ip().is_loopback() {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES) as u8));
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The message `seq` of connection `id`: its text, padded to `size` bytes.
fn message(id: usize, seq: u32, size: usize) -> Vec<u8> {
    let mut text = format!("{id} {seq} ").into_bytes();
    let head = text.len();
    text.extend((head..size).map(|i| b'a' + ((i + id + seq as usize) % 26) as u8));
    text
}

/// `text` as one masked client text frame (RFC 6455 §5.3), with a mask from `salt`.
fn masked_frame(text: &[u8], salt: u64, out: &mut Vec<u8>) {
    out.push(0x81);
    match text.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = (salt.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32;
    let mask = mask.to_be_bytes();
    out.extend_from_slice(&mask);
    out.extend(text.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// What a connection read that is not an echo.
#[derive(Debug)]
enum ReadError {
    Io(std::io::Error),
    /// The server sent a close frame (code, reason).
    Closed(String),
    Protocol(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Closed(c) => write!(f, "server closed: {c}"),
            ReadError::Protocol(p) => write!(f, "protocol: {p}"),
        }
    }
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// One client connection with a read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Conn {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve(2048);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn open(args: &Args, i: usize) -> Result<Conn, ReadError> {
        let mut c = Conn { stream: connect(args.addr, i).await?, buf: Vec::with_capacity(1024), start: 0 };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {HEAD_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            args.path, args.host
        );
        c.stream.write_all(request.as_bytes()).await?;
        loop {
            if let Some(end) = c.pending().windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&c.pending()[..end]).into_owned();
                c.start += end + 4;
                if !head.starts_with("HTTP/1.1 101") {
                    let status = head.lines().next().unwrap_or("").to_string();
                    return Err(ReadError::Protocol(format!("handshake refused: {status}")));
                }
                return Ok(c);
            }
            c.fill().await?;
        }
    }

    /// The next text message (fragments joined); pings are answered, pongs skipped.
    async fn text(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut message: Option<Vec<u8>> = None;
        loop {
            let Some((fin, opcode, hlen, len)) = frame_header(self.pending()) else {
                self.fill().await?;
                continue;
            };
            if self.pending().len() < hlen + len {
                self.fill().await?;
                continue;
            }
            let payload = self.pending()[hlen..hlen + len].to_vec();
            self.start += hlen + len;
            match opcode {
                0x9 => {
                    let mut pong = Vec::new();
                    masked_frame(&payload, 0, &mut pong);
                    pong[0] = 0x8a;
                    self.stream.write_all(&pong).await?;
                }
                0xa => {}
                0x8 => {
                    let code = payload.get(..2).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    return Err(ReadError::Closed(format!("{code} {reason}")));
                }
                0x1 if message.is_none() => {
                    if fin {
                        return Ok(payload);
                    }
                    message = Some(payload);
                }
                0x0 if message.is_some() => {
                    let m = message.as_mut().unwrap();
                    m.extend_from_slice(&payload);
                    if fin {
                        return Ok(message.take().unwrap());
                    }
                }
                op => return Err(ReadError::Protocol(format!("unexpected opcode {op:#x}"))),
            }
        }
    }
}

/// (fin, opcode, header length, payload length) of the server frame at the
/// start of `p`, once its header is complete.
fn frame_header(p: &[u8]) -> Option<(bool, u8, usize, usize)> {
    if p.len() < 2 {
        return None;
    }
    let (fin, opcode) = (p[0] & 0x80 != 0, p[0] & 0x0f);
    match p[1] & 0x7f {
        126 => Some((fin, opcode, 4, u16::from_be_bytes(p.get(2..4)?.try_into().ok()?) as usize)),
        127 => Some((fin, opcode, 10, u64::from_be_bytes(p.get(2..10)?.try_into().ok()?) as usize)),
        n => Some((fin, opcode, 2, n as usize)),
    }
}

/// Counters the progress lines read.
#[derive(Default)]
struct Progress {
    opened: AtomicU64,
    failed: AtomicU64,
    echoed: AtomicU64,
    finished: AtomicU64,
}

/// What one connection saw in the traffic phase.
#[derive(Default)]
struct Tally {
    sent: u64,
    echoed: u64,
    lost: u64,
    misrouted: u64,
    reordered: u64,
    corrupt: u64,
    /// Round trips in nanoseconds.
    latencies: Vec<u64>,
    error: Option<String>,
}

/// Why a connection stopped waiting.
enum Stop {
    Deadline,
    Stall,
    Error(ReadError),
}

async fn traffic(
    mut c: Conn,
    id: usize,
    count: u32,
    args: Arc<Args>,
    deadline: tokio::time::Instant,
    progress: Arc<Progress>,
) -> Tally {
    let mut t = Tally { latencies: Vec::with_capacity(count as usize), ..Tally::default() };
    let mut seen = vec![false; count as usize];
    let mut in_flight: VecDeque<(u32, Instant)> = VecDeque::with_capacity(args.window);
    let mut next = 0u32;
    let mut highest: Option<u32> = None;
    let mut out = Vec::new();
    let stall = Duration::from_secs_f64(args.stall);
    let stop = loop {
        out.clear();
        let now = Instant::now();
        while in_flight.len() < args.window && next < count {
            masked_frame(&message(id, next, args.size), (id as u64) << 32 | next as u64, &mut out);
            in_flight.push_back((next, now));
            next += 1;
        }
        if !out.is_empty() {
            match timeout_at(deadline, c.stream.write_all(&out)).await {
                Ok(Ok(())) => t.sent = next as u64,
                Ok(Err(e)) => break Some(Stop::Error(e.into())),
                Err(_) => break Some(Stop::Deadline),
            }
        }
        if in_flight.is_empty() {
            break None;
        }
        let limit = deadline.min(tokio::time::Instant::now() + stall);
        let echo = match timeout_at(limit, c.text()).await {
            Ok(Ok(echo)) => echo,
            Ok(Err(e)) => break Some(Stop::Error(e)),
            Err(_) if limit == deadline => break Some(Stop::Deadline),
            Err(_) => break Some(Stop::Stall),
        };
        let done = Instant::now();
        // "<id> <seq> <letters>"
        let mut fields = echo.splitn(3, |&b| b == b' ');
        let number = |f: Option<&[u8]>| f.and_then(|f| std::str::from_utf8(f).ok()?.parse::<u64>().ok());
        let (Some(from), Some(seq)) = (number(fields.next()), number(fields.next())) else {
            t.corrupt += 1;
            continue;
        };
        if from != id as u64 {
            t.misrouted += 1;
            continue;
        }
        let Some(slot) = seen.get_mut(seq as usize).filter(|s| !**s && seq < next as u64) else {
            t.corrupt += 1; // a second echo, or one of a message not sent yet
            continue;
        };
        if echo != message(id, seq as u32, args.size) {
            t.corrupt += 1;
            continue;
        }
        *slot = true;
        t.echoed += 1;
        progress.echoed.fetch_add(1, Relaxed);
        let seq = seq as u32;
        if highest.is_some_and(|h| seq < h) {
            t.reordered += 1;
        }
        highest = highest.max(Some(seq));
        if let Some(pos) = in_flight.iter().position(|&(s, _)| s == seq) {
            let (_, sent) = in_flight.remove(pos).unwrap();
            t.latencies.push((done - sent).as_nanos() as u64);
        }
    };
    t.lost = t.sent.saturating_sub(t.echoed);
    t.error = match stop {
        None => None,
        Some(Stop::Deadline) => Some("the global deadline passed".into()),
        Some(Stop::Stall) => Some(format!("no echo for {} s", args.stall)),
        Some(Stop::Error(e)) => Some(e.to_string()),
    };
    progress.finished.fetch_add(1, Relaxed);
    t
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of `/proc/<pid>/stat`, in seconds.
fn cpu_secs(pid: Option<u32>, clk_tck: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15.
    let field = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    Some((field(14)? + field(15)?) as f64 / clk_tck)
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

async fn run(args: Args) -> ExitCode {
    let args = Arc::new(args);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.deadline);
    let progress = Arc::new(Progress::default());
    let rss_before = status_kib(args.pid, "VmRSS");

    // Progress lines until the traffic phase ends.
    let ticker = {
        let (progress, args) = (progress.clone(), args.clone());
        tokio::spawn(async move {
            let every = Duration::from_secs_f64(args.progress);
            let mut last = (Instant::now(), 0);
            loop {
                tokio::time::sleep(every).await;
                let echoed = progress.echoed.load(Relaxed);
                let rate = (echoed - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), echoed);
                println!(
                    "load: {:5.1} s: {} opened, {} failed, {echoed}/{} echoed ({rate:.0}/s), {} connections done, \
                     server RSS {}",
                    started.elapsed().as_secs_f64(),
                    progress.opened.load(Relaxed),
                    progress.failed.load(Relaxed),
                    args.messages,
                    progress.finished.load(Relaxed),
                    mib(status_kib(args.pid, "VmRSS")),
                );
            }
        })
    };

    // Phase 1: open every connection.
    println!("load: opening {} connections to {}{} ({} at a time)", args.conns, args.host, args.path, args.parallel);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.parallel));
    let opening: Vec<_> = (0..args.conns)
        .map(|i| {
            let (args, gate, progress) = (args.clone(), gate.clone(), progress.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("open semaphore");
                let result = match timeout_at(deadline, Conn::open(&args, i)).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err("the global deadline passed".to_string()),
                };
                let counter = if result.is_ok() { &progress.opened } else { &progress.failed };
                counter.fetch_add(1, Relaxed);
                result
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(args.conns);
    let mut open_errors = 0;
    for (i, task) in opening.into_iter().enumerate() {
        match task.await.unwrap_or_else(|e| Err(e.to_string())) {
            Ok(c) => conns.push((i, c)),
            Err(e) => {
                if open_errors < 5 {
                    eprintln!("load: connection {i} failed to open: {e}");
                }
                open_errors += 1;
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened = conns.len();
    println!("load: {opened} connections open ({open_errors} failed) after {open_secs:.1} s");

    // Phase 2: all of them idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = status_kib(args.pid, "VmRSS");

    // Phase 3: traffic. Connection i (of those asked for) sends its share.
    let per = args.messages / args.conns as u64;
    let extra = args.messages % args.conns as u64;
    let share = |i: usize| (per + u64::from((i as u64) < extra)) as u32;
    let unsent_failed: u64 =
        (0..args.conns).filter(|i| !conns.iter().any(|(j, _)| j == i)).map(|i| share(i) as u64).sum();
    println!(
        "load: sending {} messages of {} bytes, up to {} in flight per connection",
        args.messages, args.size, args.window
    );
    let traffic_start = Instant::now();
    let cpu0 = (cpu_secs(args.pid, args.clk_tck), cpu_secs(Some(std::process::id()), args.clk_tck));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(i, c)| tokio::spawn(traffic(c, i, share(i), args.clone(), deadline, progress.clone())))
        .collect();
    let mut total = Tally::default();
    let mut errors = 0;
    let mut latencies = Vec::with_capacity(args.messages as usize);
    for task in tasks {
        let t = match task.await {
            Ok(t) => t,
            Err(e) => Tally { error: Some(e.to_string()), ..Tally::default() },
        };
        if let Some(e) = &t.error {
            if errors < 5 {
                eprintln!("load: connection error: {e}");
            }
            errors += 1;
        }
        total.sent += t.sent;
        total.echoed += t.echoed;
        total.lost += t.lost;
        total.misrouted += t.misrouted;
        total.reordered += t.reordered;
        total.corrupt += t.corrupt;
        latencies.extend_from_slice(&t.latencies);
    }
    let traffic_secs = traffic_start.elapsed().as_secs_f64();
    let cpu1 = (cpu_secs(args.pid, args.clk_tck), cpu_secs(Some(std::process::id()), args.clk_tck));
    ticker.abort();
    let _ = ticker.await;
    latencies.sort_unstable();
    let ms = |q| quantile(&latencies, q) as f64 / 1e6;

    let unsent = args.messages - total.sent;
    let per_conn = match (rss_before, rss_idle) {
        (Some(b), Some(w)) if opened > 0 => format!("{:.0} B", (w as f64 - b as f64) * 1024.0 / opened as f64),
        _ => "?".to_string(),
    };
    println!();
    println!("connections:        {opened} of {} opened in {open_secs:.1} s ({open_errors} failed)", args.conns);
    println!(
        "messages:           {} sent, {} echoed in {traffic_secs:.1} s ({} not sent{})",
        total.sent,
        total.echoed,
        unsent,
        if unsent_failed > 0 {
            format!(", {unsent_failed} of them for connections that did not open")
        } else {
            String::new()
        }
    );
    println!("messages/s:         {:.0}", total.echoed as f64 / traffic_secs);
    println!(
        "round trip:         p50 {:.2} ms, p99 {:.2} ms (window {} per connection)",
        ms(0.50),
        ms(0.99),
        args.window
    );
    let cpu = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => {
            format!(
                "{:.1} s ({:.0}% of a core, {:.1} µs per message)",
                b - a,
                (b - a) / traffic_secs * 100.0,
                (b - a) * 1e6 / total.echoed.max(1) as f64
            )
        }
        _ => "?".to_string(),
    };
    println!("CPU, traffic phase: server {}, generator {}", cpu(cpu0.0, cpu1.0), cpu(cpu0.1, cpu1.1));
    println!(
        "server RSS:         {} before connecting, {} with all idle, peak (VmHWM) {}",
        mib(rss_before),
        mib(rss_idle),
        mib(status_kib(args.pid, "VmHWM"))
    );
    println!("RSS per idle conn:  {per_conn}");
    println!("connection errors:  {errors}; corrupt or duplicate echoes: {}", total.corrupt);
    println!(
        "lost={} misrouted={} reordered={} connections={opened} messages={}",
        total.lost, total.misrouted, total.reordered, total.sent
    );
    let clean = total.lost == 0 && total.misrouted == 0 && total.reordered == 0 && total.corrupt == 0;
    if clean && opened == args.conns && unsent == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn main() -> ExitCode {
    let args = parse_args();
    if args.pid.is_some_and(|p| status_kib(Some(p), "VmRSS").is_none()) {
        usage("--pid: no /proc/<pid>/status with VmRSS");
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .expect("a runtime");
    runtime.block_on(run(args))
}
