//! Region configuration with the SPEC defaults.

use std::time::Duration;

use crate::trust::{ForwardedHeader, IpNet};

/// All limits and timers of one [`Region`](crate::Region).
///
/// `Config::default()` gives the SPEC defaults; build a variant with struct
/// update syntax:
///
/// ```
/// use lsl_websocket::Config;
/// let config = Config { authority: "sim.example.org:8787".into(), ..Config::default() };
/// assert_eq!(config.max_message, 2048);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `host:port` that `ws://` URLs are minted with.
    pub authority: String,
    /// `host:port` for `wss://` URLs, when the embedder terminates TLS.
    /// `None` denies `WS_SECURE` requests with `no-secure`.
    pub secure_authority: Option<String>,
    /// Largest text message in bytes of UTF-8, both directions (SPEC: 2048).
    /// `WS_MAX_MESSAGE` may lower it per URL, never raise it.
    pub max_message: usize,
    /// Script event queue length (LSL's: 64). A full queue pauses reading.
    pub event_queue: usize,
    /// Outgoing bytes buffered per session before sends return `WS_ERR_BUSY` (64 KiB).
    pub outgoing_buffer: usize,
    /// Open sessions per URL; the next handshake gets 503.
    pub sessions_per_url: usize,
    /// Live URLs per script; the next request is denied with `too-many`.
    pub urls_per_script: usize,
    /// Region-scope domains one script may listen on; the next request is denied with `too-many`.
    pub domains_per_script: usize,
    /// Domains one region-endpoint client may subscribe to; the next `sub` is answered `err,<domain>,busy`.
    pub subscriptions_per_session: usize,
    /// Open sessions on the region endpoint; the next handshake gets 503.
    pub region_endpoint_sessions: usize,
    /// Live URLs in the whole region; the next request is denied with `budget`.
    pub region_url_budget: usize,
    /// Live URLs per owner in this region, if the embedder sets one.
    pub owner_url_budget: Option<usize>,
    /// Time from accept to a complete handshake before the connection is dropped (10 s).
    pub handshake_timeout: Duration,
    /// Silence before the server pings, and again before it gives up (30 s).
    pub idle_interval: Duration,
    /// Time to wait for the client's close echo after the server sent a close.
    pub close_timeout: Duration,
    /// Longest header value accepted in a handshake (255 bytes; more gets 431).
    pub max_header_value: usize,
    /// Longest request head accepted (8 KiB; more gets 431).
    pub max_request_head: usize,
    /// Handshakes accepted per remote address per second; more get 429.
    pub handshakes_per_second: u32,
    /// Connections still reading their request head, region-wide (SPEC §5:
    /// 1024); a connection accepted over it is answered 503 and closed.
    pub max_handshakes: usize,
    /// How long a region-scope message waits for room in a full listener
    /// queue before it is answered `err,<domain>,busy` (SPEC §5: 1 s).
    pub busy_grace: Duration,
    /// Hand requests for paths outside `/lslws/` and `/lslhttp/` to the embedder as
    /// [`Output::HttpRequest`](crate::Output::HttpRequest) (to serve a page on
    /// the same port) instead of answering them 404.
    pub serve_other_paths: bool,
    /// HTTP-in: largest request body the script receives, in bytes of UTF-8
    /// (SPEC §8: 2048). Longer bodies are cut (Second Life's behaviour) or,
    /// with [`refuse_large_bodies`](Config::refuse_large_bodies), answered 413.
    pub max_body: usize,
    /// HTTP-in: answer a body over [`max_body`](Config::max_body) with 413
    /// instead of cutting it.
    pub refuse_large_bodies: bool,
    /// HTTP-in: requests one script may have in flight (SPEC §8: 64); the next gets 503.
    pub http_in_flight: usize,
    /// HTTP-in: time from the `http_request` event to `llHTTPResponse` before
    /// the request is answered with [`http_timeout_status`](Config::http_timeout_status) (25 s).
    pub http_timeout: Duration,
    /// HTTP-in: the status of a request the script did not answer in time
    /// (504; OpenSimulator answers 500).
    pub http_timeout_status: u16,
    /// HTTP-in: the body of that answer (OpenSimulator's is `Script timeout`).
    pub http_timeout_body: String,
    /// HTTP-in: how long after the event `llGetHTTPHeader` answers (30 s).
    pub header_lifetime: Duration,
    /// HTTP-in: serve `CONTENT_TYPE_HTML` as `text/html`. Second Life allows
    /// it only to the owner's own viewer; off, HTML is served as `text/plain`.
    pub allow_html: bool,
    /// Peers allowed to name the client's address (SPEC §15): a PROXY
    /// protocol header from them (see [`proxy`](crate::proxy)), and the
    /// [`forwarded_header`](Config::forwarded_header) of their requests,
    /// set `x-remote-ip` and the rate-limit key. From any other peer both
    /// are ignored. Empty (the default): every peer is the client.
    pub trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies append the client chain to; only it
    /// is read, from its rightmost untrusted hop.
    pub forwarded_header: ForwardedHeader,
    /// For a region that shares its port with others (SPEC §16): every
    /// capability it mints (URLs, the region endpoint, SSE send tokens)
    /// starts with these two bytes, its first four hex digits, so a router
    /// finds the region from the request line alone with
    /// [`route::route`](crate::route::route). 112 random bits stay. `None`:
    /// all 128 bits are random.
    pub route_tag: Option<u16>,
}

impl Config {
    /// Whether `ip` is in [`trusted_proxies`](Config::trusted_proxies).
    pub fn is_trusted(&self, ip: core::net::IpAddr) -> bool {
        crate::trust::is_trusted(&self.trusted_proxies, ip)
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            authority: "127.0.0.1:8787".to_string(),
            secure_authority: None,
            max_message: 2048,
            event_queue: 64,
            outgoing_buffer: 64 * 1024,
            sessions_per_url: 256,
            urls_per_script: 16,
            domains_per_script: 16,
            subscriptions_per_session: 32,
            region_endpoint_sessions: 4096,
            region_url_budget: 1024,
            owner_url_budget: None,
            handshake_timeout: Duration::from_secs(10),
            idle_interval: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            max_header_value: 255,
            max_request_head: 8 * 1024,
            handshakes_per_second: 50,
            max_handshakes: 1024,
            busy_grace: Duration::from_secs(1),
            serve_other_paths: false,
            max_body: 2048,
            refuse_large_bodies: false,
            http_in_flight: 64,
            http_timeout: Duration::from_secs(25),
            http_timeout_status: 504,
            http_timeout_body: String::new(),
            header_lifetime: Duration::from_secs(30),
            allow_html: false,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            route_tag: None,
        }
    }
}
