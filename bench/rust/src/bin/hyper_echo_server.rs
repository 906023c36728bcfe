//! A minimal hyper HTTP/1.1 keep-alive echo server on a tokio current-thread runtime.
//!
//! ```text
//! hyper_echo_server [--bind 127.0.0.1:0]
//! ```
//!
//! Prints `listening <addr>` once bound. Every request, whatever its method
//! and path, is answered `200` with `Content-Type: text/plain; charset=utf-8`
//! and the request body as the response body (hyper adds `content-length`
//! and `date`): the same echo the HTTP-in script does, without a script.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut bind = "127.0.0.1:0".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().expect("--bind ADDR"),
            other => panic!("unknown argument {other}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(serve(bind))
}

async fn serve(bind: String) -> std::io::Result<()> {
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
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = http1::Builder::new().serve_connection(io, service_fn(echo)).await;
        });
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    Ok(response)
}
