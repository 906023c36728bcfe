//! The floor for `bench/broadcast.sh`: one thread writing one frame to every
//! connected socket, one `write` system call each, nothing else.
//!
//! ```text
//! write_floor --clients N [--bind 127.0.0.1:0] [--size 64]
//! ```
//!
//! Prints `listening <addr>`. Accepts `N` subscriber connections and then one
//! trigger connection (the load generator opens it after every subscriber's
//! handshake), answering each upgrade request with a bare `101` (no protocol
//! beyond what `loadgen broadcast` needs: it checks only the status line).
//! What subscribers send is never read. Then, for every frame the trigger
//! connection sends, it stamps `CLOCK_MONOTONIC` and writes the same frame
//! `llWebsocketBroadcast` puts on the wire in `lsl_mio_server` —
//! `msg,bench,<t0> <N> ` padded with `x` to `--size` bytes of text, unmasked —
//! to each subscriber with one blocking `write` each, in accept order.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use lsl_websocket_bench::monotonic_ns;

fn main() -> std::io::Result<()> {
    let (mut bind, mut clients, mut size) = ("127.0.0.1:0".to_string(), 1000usize, 64usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => bind = value,
            "--clients" => clients = value.parse().expect("--clients N"),
            "--size" => size = value.parse().expect("--size B"),
            other => panic!("unknown argument {other}"),
        }
    }
    let listener = TcpListener::bind(&bind)?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let mut subscribers = Vec::with_capacity(clients);
    while subscribers.len() < clients {
        subscribers.push(accept(&listener)?);
    }
    let mut trigger = accept(&listener)?;
    let mut buf = [0u8; 4096];
    loop {
        // One trigger frame (or several at once: each read is one broadcast).
        if trigger.read(&mut buf)? == 0 {
            return Ok(());
        }
        let t0 = monotonic_ns();
        let mut text = format!("msg,bench,{t0} {clients} ");
        while text.len() < size + "msg,bench,".len() {
            text.push('x');
        }
        let mut frame = vec![0x81];
        if text.len() < 126 {
            frame.push(text.len() as u8);
        } else {
            frame.push(126);
            frame.extend_from_slice(&(text.len() as u16).to_be_bytes());
        }
        frame.extend_from_slice(text.as_bytes());
        for s in &mut subscribers {
            s.write_all(&frame)?;
        }
    }
}

fn accept(listener: &TcpListener) -> std::io::Result<TcpStream> {
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")?;
    Ok(stream)
}
