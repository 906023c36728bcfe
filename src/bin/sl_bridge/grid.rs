//! The bridge's HTTP client: one delivery to a script's HTTP-in URL.

use std::time::Duration;

use crate::policy::{Delivery, Outcome};

/// The most of a script's answer that is read (Second Life answers at most 2048 bytes).
const MAX_ANSWER: usize = 16 * 1024;

/// The HTTP client every delivery goes through: pooled keep-alive
/// connections, rustls on ring for `https://` HTTP-in URLs, no redirects
/// (an HTTP-in URL never redirects; following one would let a script aim
/// the bridge elsewhere), a connect timeout here and a whole-request
/// timeout per delivery.
/// `extra_roots` are trusted besides the public roots: Second Life's
/// `llRequestSecureURL` certificates come from Linden Lab's own CA, an
/// OpenSimulator grid's often from a private one.
pub fn client(connect_timeout: Duration, extra_roots: Vec<reqwest::Certificate>) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    for root in extra_roots {
        builder = builder.add_root_certificate(root);
    }
    builder
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(20))
        .user_agent(concat!("lsl-websocket-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// POSTs `delivery` and sorts the answer into an [`Outcome`].
pub async fn deliver(client: &reqwest::Client, delivery: &Delivery, timeout: Duration) -> Outcome {
    let mut request = client
        .post(&delivery.url)
        .timeout(timeout)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-bridge-event", delivery.event);
    if let Some(session) = delivery.session {
        request = request.header("x-bridge-session", session.to_string());
    }
    let response = match request.body(delivery.body.clone()).send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Outcome::Failed(format!("no answer within {} s", timeout.as_secs_f32())),
        Err(e) if e.is_builder() => return Outcome::Failed("bad script URL".into()),
        // A certificate the bridge does not trust will not become trusted by retrying.
        Err(e) if tls_failure(&e).is_some() => return Outcome::Failed(tls_failure(&e).unwrap_or_default()),
        // Refused, reset or cut before an answer: the grid may be restarting.
        Err(e) => return Outcome::Unreachable(short(&e)),
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => match response.bytes().await {
            Ok(body) => Outcome::Answered(String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER)]).into_owned()),
            Err(e) if e.is_timeout() => Outcome::Failed(format!("no answer within {} s", timeout.as_secs_f32())),
            Err(e) => Outcome::Failed(format!("answer cut: {}", short(&e))),
        },
        404 => Outcome::Gone,
        429 | 503 => Outcome::Busy(retry_after),
        other => Outcome::Failed(format!("the grid answered {other}")),
    }
}

/// `Some(why)` when the request failed in the TLS handshake (rustls said so).
fn tls_failure(e: &reqwest::Error) -> Option<String> {
    find_tls(e).map(|tls| format!("TLS: {tls}"))
}

/// Looks through the error chain, and into `io::Error`s, whose `source`
/// skips the error they wrap (tokio-rustls wraps rustls' error in one).
fn find_tls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
        && let Some(tls) = find_tls(inner)
    {
        return Some(tls);
    }
    e.source().and_then(find_tls)
}

/// An error's innermost cause, without the URL (which holds the script's capability).
fn short(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    let text = source.to_string();
    if e.is_connect() { format!("connect: {text}") } else { text }
}
