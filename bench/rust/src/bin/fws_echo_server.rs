//! A fastwebsockets (denoland's crate) echo server on a tokio current-thread runtime.
//!
//! ```text
//! fws_echo_server [--bind 127.0.0.1:0] [--hyper]
//! ```
//!
//! Prints `listening <addr>` once bound. Every text or binary message is sent
//! back on its connection (`FragmentCollector`, so whole messages as the other
//! servers see them; pings answered, closes echoed by fastwebsockets). One task
//! per connection, each run `unconstrained` as the crate's own echo example does.
//!
//! The handshake: by default read here and answered with tungstenite's
//! `derive_accept_key`, then `WebSocket::after_handshake` on the bare
//! `TcpStream` (fastwebsockets' fastest path: no hyper in the read path);
//! with `--hyper`, through hyper's HTTP/1.1 server and fastwebsockets'
//! `upgrade` (the frame path then reads through hyper's `Upgraded`).

use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let mut bind = "127.0.0.1:0".to_string();
    let mut via_hyper = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().expect("--bind ADDR"),
            "--hyper" => via_hyper = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(serve(bind, via_hyper))
}

async fn serve(bind: String, via_hyper: bool) -> std::io::Result<()> {
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
        if via_hyper {
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = http1::Builder::new().serve_connection(io, service_fn(upgrade)).with_upgrades().await;
            });
        } else {
            tokio::spawn(tokio::task::unconstrained(async move {
                if let Ok(ws) = handshake(stream).await {
                    let _ = echo(ws).await;
                }
            }));
        }
    }
}

/// Reads the upgrade request head, answers 101, hands the socket to fastwebsockets.
async fn handshake(mut stream: TcpStream) -> std::io::Result<WebSocket<TcpStream>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 8192 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let key = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, v)| v.trim().to_string())
        .ok_or_else(|| std::io::Error::other("no Sec-WebSocket-Key"))?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(WebSocket::after_handshake(stream, Role::Server))
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocket<S>) -> Result<(), WebSocketError> {
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
    tokio::spawn(tokio::task::unconstrained(async move {
        if let Ok(ws) = fut.await {
            let _ = echo(ws).await;
        }
    }));
    Ok(response)
}
