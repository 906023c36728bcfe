//! A tokio-tungstenite echo server with 4 KiB read and write buffers.
//!
//! ```text
//! tt_echo_server [--bind 127.0.0.1:0] [--current-thread]
//! ```
//!
//! Prints `listening <addr>` once bound. Every text or binary message is sent
//! back on its connection; pings are answered by tungstenite. Any path is
//! accepted. Runs on tokio's multi-thread runtime (one worker per core, what
//! `#[tokio::main]` gives), or with `--current-thread` on one thread.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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
    runtime.block_on(serve(bind))
}

async fn serve(bind: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&bind).await?;
    println!("listening {}", listener.local_addr()?);
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096);
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
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else { return };
            while let Some(Ok(message)) = ws.next().await {
                if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                    break;
                }
            }
        });
    }
}
