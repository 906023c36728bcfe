//! The example's command line.

use lsl_websocket::adapter::tokio::ListenerOptions;
use lsl_websocket::{Config, IpNet};

pub struct Args {
    pub bind: String,
    pub max_message: usize,
    pub sessions_per_url: usize,
    pub handshakes_per_second: u32,
    /// Seconds before an unanswered HTTP-in request is answered 504.
    pub http_timeout: u64,
    /// 0: a current-thread runtime; otherwise a multi-thread runtime with this many workers.
    pub worker_threads: usize,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub tls_bind: String,
    /// The TLS listener expects a PROXY header first.
    pub tls_proxy: bool,
    /// A plain listener that expects a PROXY header first.
    pub proxy_bind: Option<String>,
    pub authority: Option<String>,
    pub secure_authority: Option<String>,
    /// CIDRs of trusted proxies, as given.
    pub trusted: Vec<IpNet>,
    pub regions: usize,
}

const USAGE: &str = "usage: echo_server [--bind ADDR] [--max-message N] [--sessions-per-url N] [--handshakes-per-second N] \
     [--worker-threads N] [--http-timeout SECS] [--authority HOST:PORT] [--proxy-bind ADDR] [--trusted-proxy CIDR]... \
     [--regions N] [--secure-authority HOST:PORT] [--tls-cert FILE --tls-key FILE [--tls-bind ADDR] [--tls-proxy]]\n\
     stdin: reset, rez, region-change, owner-change, remove, release, restart, quit; with --regions N > 1 each \
     takes a region index (`reset 2`, default 0), plus add-region, remove-region I, cross I J";

/// The value after a flag, as a positive number.
fn number<T: std::str::FromStr + PartialEq + Default>(flag: &str, value: Option<String>) -> Result<T, String> {
    let n = value.ok_or_else(|| format!("{flag} needs a number"))?;
    let parsed: T = n.parse().map_err(|_| format!("{flag}: not a number: {n}"))?;
    if parsed == T::default() {
        return Err(format!("{flag} must be at least 1"));
    }
    Ok(parsed)
}

pub fn parse() -> Result<Args, String> {
    let defaults = Config::default();
    let mut args = Args {
        bind: "127.0.0.1:8787".to_string(),
        max_message: defaults.max_message,
        sessions_per_url: defaults.sessions_per_url,
        // 200 clients connecting at once from one address must not be refused 429.
        handshakes_per_second: 400,
        worker_threads: 0,
        http_timeout: 25,
        tls_cert: None,
        tls_key: None,
        tls_bind: "127.0.0.1:8788".to_string(),
        tls_proxy: false,
        proxy_bind: None,
        authority: None,
        secure_authority: None,
        trusted: Vec::new(),
        regions: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => args.bind = value()?,
            "--tls-cert" => args.tls_cert = Some(value()?),
            "--tls-key" => args.tls_key = Some(value()?),
            "--tls-bind" => args.tls_bind = value()?,
            "--proxy-bind" => args.proxy_bind = Some(value()?),
            "--authority" => args.authority = Some(value()?),
            "--secure-authority" => args.secure_authority = Some(value()?),
            "--trusted-proxy" => args.trusted.push(cidr(&value()?)?),
            "--tls-proxy" => args.tls_proxy = true,
            "--max-message" => args.max_message = number(&arg, it.next())?,
            "--sessions-per-url" => args.sessions_per_url = number(&arg, it.next())?,
            "--handshakes-per-second" => args.handshakes_per_second = number(&arg, it.next())?,
            "--worker-threads" => args.worker_threads = number(&arg, it.next())?,
            "--http-timeout" => args.http_timeout = number(&arg, it.next())?,
            "--regions" => args.regions = number(&arg, it.next())?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other} ({USAGE})")),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    // --secure-authority alone: TLS ends in a proxy in front (docs/deploy.md).
    if args.tls_cert.is_none() && args.tls_proxy {
        return Err("--tls-proxy needs --tls-cert and --tls-key".into());
    }
    Ok(args)
}

/// The TLS listener's options, when a certificate was given.
pub fn tls_options(args: &Args) -> Result<Option<ListenerOptions>, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else { return Ok(None) };
    #[cfg(feature = "tls")]
    {
        let tls = lsl_websocket::adapter::tls::TlsConfig::from_pem_files(cert, key).map_err(|e| e.to_string())?;
        let options = ListenerOptions::tls(tls);
        Ok(Some(if args.tls_proxy { options.with_proxy_protocol() } else { options }))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (cert, key);
        Err("--tls-cert: this echo_server was built without the `tls` feature".into())
    }
}

/// `config` with the trusted proxies given on the command line.
/// One `--trusted-proxy` network (`10.0.0.0/8`, `::1/128`, `127.0.0.1`).
fn cidr(value: &str) -> Result<IpNet, String> {
    value.parse().map_err(|e| format!("--trusted-proxy {value}: {e}"))
}
