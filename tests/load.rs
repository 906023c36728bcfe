//! A scaled-down `bench/load.sh`: 1,000 concurrent connections to the tokio
//! adapter in this process, 20 messages each with up to 4 in flight, every
//! echo checked for its connection and its place in that connection's order.
//!
//! Each message is `"<connection> <sequence> "` padded with letters, so an
//! echo on the wrong connection (misrouted), out of order (reordered), never
//! arriving (lost, bounded by a deadline) or changed (corrupt) is counted, and
//! all four must be 0. No assertion on speed: the deadline is generous.
//!
//! The test holds two descriptors per connection (client and server side).
//! When the soft open-file limit is too low it is raised with util-linux's
//! `prlimit` up to the hard limit; if that is not enough the test runs with
//! as many connections as fit, says so on stdout, and fails below 500.

mod e2e_support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_support::Target;
use e2e_support::echo::{example_config, start_tokio};
use e2e_support::wire::{KEY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, masked, parse_frame, split_url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

const CONNECTIONS: usize = 1000;
/// Fewer than this and the test fails instead of scaling down.
const MIN_CONNECTIONS: usize = 500;
const MESSAGES: u32 = 20;
const WINDOW: usize = 4;
const SIZE: usize = 48;
/// Bounds the whole exchange; far above what it takes (a few seconds in debug).
const DEADLINE: Duration = Duration::from_secs(120);
/// Descriptors besides the connections' (test harness, runtimes, cargo's pipes).
const SPARE_FDS: u64 = 256;

fn fds_needed(connections: usize) -> u64 {
    2 * connections as u64 + SPARE_FDS
}

/// A line on stderr that the test harness does not capture: a scaled-down run must show.
fn notice(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The (soft, hard) open-file limits of this process; `None` for unlimited.
fn open_file_limits() -> Option<(Option<u64>, Option<u64>)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let mut next = || fields.next().map(|f| f.parse::<u64>().ok());
    Some((next()?, next()?))
}

/// How many connections this process can hold, after trying to raise the soft limit.
fn connections_that_fit() -> usize {
    let Some((soft, hard)) = open_file_limits() else {
        notice(&format!("load: no /proc/self/limits; assuming {CONNECTIONS} connections fit"));
        return CONNECTIONS;
    };
    let need = fds_needed(CONNECTIONS);
    let soft = match soft {
        Some(soft) if soft < need => {
            let target = hard.map_or(need, |h| need.min(h));
            // prlimit sets this process's soft limit from outside; no libc needed here.
            let raised = std::process::Command::new("prlimit")
                .args(["--pid", &std::process::id().to_string(), &format!("--nofile={target}:")])
                .status()
                .is_ok_and(|s| s.success());
            let now = open_file_limits().and_then(|(s, _)| s).unwrap_or(soft);
            notice(&format!(
                "load: soft open-file limit {soft}; prlimit to {target} (hard limit {}): {}; now {now}",
                hard.map_or("unlimited".to_string(), |h| h.to_string()),
                if raised { "done" } else { "failed" }
            ));
            now
        }
        Some(soft) => soft,
        None => return CONNECTIONS,
    };
    if soft >= need {
        return CONNECTIONS;
    }
    let fit = (soft.saturating_sub(SPARE_FDS) / 2) as usize;
    notice(&format!(
        "load: the open-file limit {soft} holds {fit} connections, not {CONNECTIONS}; \
         raise `ulimit -n` to {need} for the full count"
    ));
    assert!(
        fit >= MIN_CONNECTIONS,
        "{MIN_CONNECTIONS} connections need an open-file limit of {}; it is {soft} (raise `ulimit -n`)",
        fds_needed(MIN_CONNECTIONS)
    );
    fit
}

/// Message `seq` of connection `id`.
fn message(id: usize, seq: u32) -> String {
    let mut text = format!("{id} {seq} ");
    let head = text.len();
    text.extend((head..SIZE).map(|i| char::from(b'a' + ((i + id + seq as usize) % 26) as u8)));
    text
}

/// One client: a socket and what it has read but not yet parsed.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn open(addr: SocketAddr, path: &str) -> std::io::Result<Client> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut client = Client { stream, buf: Vec::with_capacity(1024) };
        loop {
            if let Some(end) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&client.buf[..end]).into_owned();
                if !head.starts_with("HTTP/1.1 101") {
                    return Err(std::io::Error::other(format!("handshake refused: {head}")));
                }
                client.buf.drain(..end + 4);
                return Ok(client);
            }
            client.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The next text message; pings are answered.
    async fn text(&mut self) -> std::io::Result<String> {
        loop {
            let Some((frame, used)) = parse_frame(&self.buf) else {
                self.fill().await?;
                continue;
            };
            self.buf.drain(..used);
            match frame.opcode {
                OP_PING => self.stream.write_all(&masked(true, OP_PONG, &frame.payload)).await?,
                OP_PONG => {}
                OP_TEXT if frame.fin => {
                    return String::from_utf8(frame.payload).map_err(|_| std::io::Error::other("echo not UTF-8"));
                }
                OP_CLOSE => return Err(std::io::Error::other(format!("server closed: {:?}", frame.close()))),
                _ => return Err(std::io::Error::other(format!("unexpected frame {frame:?}"))),
            }
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    echoed: u64,
    lost: u64,
    misrouted: u64,
    reordered: u64,
    corrupt: u64,
    errors: Vec<String>,
}

/// Sends connection `id`'s messages, up to [`WINDOW`] in flight, and checks every echo.
async fn traffic(mut c: Client, id: usize, deadline: tokio::time::Instant) -> Tally {
    let mut t = Tally::default();
    let mut seen = [false; MESSAGES as usize];
    let mut in_flight = VecDeque::new();
    let (mut next, mut highest) = (0u32, None);
    loop {
        let mut out = Vec::new();
        while in_flight.len() < WINDOW && next < MESSAGES {
            out.extend(masked(true, OP_TEXT, message(id, next).as_bytes()));
            in_flight.push_back(next);
            next += 1;
        }
        if !out.is_empty() {
            match timeout_at(deadline, c.stream.write_all(&out)).await {
                Ok(Ok(())) => t.sent = u64::from(next),
                Ok(Err(e)) => break t.errors.push(format!("connection {id}: write: {e}")),
                Err(_) => break t.errors.push(format!("connection {id}: deadline while writing")),
            }
        }
        if in_flight.is_empty() {
            break;
        }
        let echo = match timeout_at(deadline, c.text()).await {
            Ok(Ok(echo)) => echo,
            Ok(Err(e)) => break t.errors.push(format!("connection {id}: {e}")),
            Err(_) => break t.errors.push(format!("connection {id}: deadline, {} echoes missing", in_flight.len())),
        };
        let mut fields = echo.splitn(3, ' ');
        let (Some(Ok(from)), Some(Ok(seq))) =
            (fields.next().map(str::parse::<usize>), fields.next().map(str::parse::<u32>))
        else {
            t.corrupt += 1;
            continue;
        };
        if from != id {
            t.misrouted += 1;
            continue;
        }
        if seq >= next || seen[seq as usize] || echo != message(id, seq) {
            t.corrupt += 1;
            continue;
        }
        seen[seq as usize] = true;
        t.echoed += 1;
        if highest.is_some_and(|h| seq < h) {
            t.reordered += 1;
        }
        highest = highest.max(Some(seq));
        in_flight.retain(|&s| s != seq);
    }
    t.lost = t.sent - t.echoed;
    t
}

async fn run(url: &str, connections: usize) -> (usize, Tally) {
    let (addr, path) = split_url(url);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // All connections open first, so that all of them are open at once.
    let gate = Arc::new(tokio::sync::Semaphore::new(100));
    let opening: Vec<_> = (0..connections)
        .map(|_| {
            let (gate, path) = (gate.clone(), path.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("open semaphore");
                timeout_at(deadline, Client::open(addr, &path)).await
            })
        })
        .collect();
    let mut clients = Vec::with_capacity(connections);
    let mut total = Tally::default();
    for (id, task) in opening.into_iter().enumerate() {
        match task.await.expect("an opening task") {
            Ok(Ok(client)) => clients.push((id, client)),
            Ok(Err(e)) => total.errors.push(format!("connection {id}: {e}")),
            Err(_) => total.errors.push(format!("connection {id}: deadline while opening")),
        }
    }
    let opened = clients.len();
    let tasks: Vec<_> = clients.into_iter().map(|(id, c)| tokio::spawn(traffic(c, id, deadline))).collect();
    for task in tasks {
        let t =
            task.await.unwrap_or_else(|e| Tally { errors: vec![format!("a task failed: {e}")], ..Tally::default() });
        total.sent += t.sent;
        total.echoed += t.echoed;
        total.lost += t.lost;
        total.misrouted += t.misrouted;
        total.reordered += t.reordered;
        total.corrupt += t.corrupt;
        total.errors.extend(t.errors);
    }
    (opened, total)
}

#[test]
fn thousand_connections_every_echo_checked() {
    let connections = connections_that_fit();
    let _heavy = e2e_support::heavy();
    let config = lsl_websocket::Config {
        sessions_per_url: connections + 16,
        handshakes_per_second: 1_000_000,
        ..example_config()
    };
    let target = start_tokio(config);
    let url = target.object_url();
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let (opened, t) = runtime.block_on(run(&url, connections));
    println!(
        "load: {opened} connections, {} sent, {} echoed in {:.1} s; lost={} misrouted={} reordered={} corrupt={}",
        t.sent,
        t.echoed,
        started.elapsed().as_secs_f64(),
        t.lost,
        t.misrouted,
        t.reordered,
        t.corrupt
    );
    let first_errors: Vec<_> = t.errors.iter().take(5).collect();
    assert_eq!(opened, connections, "connections that opened; first errors: {first_errors:?}");
    assert_eq!(
        (t.lost, t.misrouted, t.reordered, t.corrupt),
        (0, 0, 0, 0),
        "lost, misrouted, reordered, corrupt; first errors: {first_errors:?}"
    );
    assert_eq!(t.sent, connections as u64 * u64::from(MESSAGES), "every message sent; first errors: {first_errors:?}");
    assert!(t.errors.is_empty(), "{} connection errors, first: {first_errors:?}", t.errors.len());
}
