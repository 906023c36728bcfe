//! A minimal HTTP/1.1 keep-alive echo server: the long-polling side of the
//! comparison (how LSL scripters exchange messages over HTTP-in today).
//!
//! ```text
//! longpoll_server [--bind 127.0.0.1:0] [--current-thread]
//! ```
//!
//! Prints `listening <addr>` once bound. Every request's body is the
//! response body: `200 OK` with `Content-Type` and `Content-Length` only (a
//! real grid's HTTP-in adds more headers, so this is the cheapest possible
//! long-poll). Hand-rolled on tokio with a 4 KiB read buffer; no chunked
//! bodies, which the load generator does not send. A multi-thread runtime,
//! or with `--current-thread` one thread (as the `echo_server` example runs).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

fn main() -> std::io::Result<()> {
    let mut bind = "127.0.0.1:0".to_string();
    let mut current_thread = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().expect("--bind ADDR"),
            "--current-thread" => current_thread = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = if current_thread {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()?
    };
    runtime.block_on(serve_on(bind))
}

async fn serve_on(bind: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&bind).await?;
    println!("listening {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = serve(stream).await;
        });
    }
}

/// The request head's `Content-Length` and whether it asks to close.
fn parse_head(head: &[u8]) -> Option<(usize, bool)> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split(' ');
    let (_method, _target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let mut close = version != "HTTP/1.1";
    let mut length = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        }
    }
    Some((length, close))
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // A complete head …
        let head_end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > MAX_HEAD {
                stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
                return Ok(());
            }
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let Some((length, close)) = parse_head(&buf[..head_end]) else {
            stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
            return Ok(());
        };
        // … and its body.
        while buf.len() < head_end + length {
            buf.reserve(4096);
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
        out.extend_from_slice(length.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&buf[head_end..head_end + length]);
        stream.write_all(&out).await?;
        buf.drain(..head_end + length);
        if close {
            return Ok(());
        }
    }
}
