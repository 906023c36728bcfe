//! The front stage of one connection on the tokio adapter, before any region
//! sees it: the PROXY protocol header (on listeners configured to expect
//! one), the TLS handshake (on TLS listeners), and, when many regions share
//! the port, the first bytes that name the region (the routing prefix).
//!
//! The whole stage is bounded by [`Config::handshake_timeout`] and by size
//! (the PROXY header by `proxy::MAX_LEN`, the prefix by `route::MAX_PREFIX`),
//! and the number of connections in it at once by
//! [`Config::max_handshakes`]. What it read beyond what it needed is never
//! lost: bytes after the PROXY header go to the TLS layer (or, on a plain
//! listener, to the region), and the routing prefix is fed to the region as
//! its first [`Input::Received`](crate::Input::Received).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::{proxy, route};

/// How one listening socket's connections start.
///
/// The default is a plain listener whose connections start with the
/// client's own bytes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// Terminate TLS with this configuration (after the PROXY header, if any).
    #[cfg(feature = "tls")]
    pub tls: Option<super::tls::TlsConfig>,
    /// Every connection starts with a PROXY protocol header (v1 or v2), as
    /// sent by HAProxy's `send-proxy` or nginx's `proxy_protocol on`. The
    /// PROXY spec forbids guessing, so a listener either always expects it
    /// or never; a connection without a valid header is closed. The address
    /// it names is the client's only when the peer is in
    /// `Config::trusted_proxies`.
    pub proxy_protocol: bool,
}

impl ListenerOptions {
    /// A plain listener (`ws://`, `http://`).
    pub fn plain() -> ListenerOptions {
        ListenerOptions::default()
    }

    /// A TLS listener (`wss://`, `https://`).
    #[cfg(feature = "tls")]
    pub fn tls(tls: super::tls::TlsConfig) -> ListenerOptions {
        ListenerOptions { tls: Some(tls), proxy_protocol: false }
    }

    /// The same listener, expecting a PROXY protocol header first.
    pub fn with_proxy_protocol(self) -> ListenerOptions {
        ListenerOptions { proxy_protocol: true, ..self }
    }

    /// Whether connections need a front stage at all (a plain listener
    /// without PROXY hands its sockets straight to the region).
    pub(crate) fn needs_front(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return true;
        }
        self.proxy_protocol
    }
}

/// A TLS stream whose socket can move between runtimes.
#[cfg(feature = "tls")]
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<super::tls::FrontIo>;

/// A connection after its front stage, on the current runtime.
pub(crate) enum Stream {
    /// The region task writes to it directly (see `adapter::tokio`).
    Plain(TcpStream),
    /// The connection task owns it: rustls state cannot be shared.
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
}

impl Stream {
    /// Takes the socket off this runtime, to hand it to a region thread.
    pub(crate) fn detach(self) -> io::Result<Detached> {
        match self {
            Stream::Plain(sock) => Ok(Detached {
                sock: sock.into_std()?,
                #[cfg(feature = "tls")]
                tls: None,
            }),
            #[cfg(feature = "tls")]
            Stream::Tls(mut tls) => {
                let sock = tls.get_mut().0.take()?.into_std()?;
                Ok(Detached { sock, tls: Some(tls) })
            }
        }
    }
}

/// A connection between two runtimes: its socket registered with none.
pub(crate) struct Detached {
    sock: std::net::TcpStream,
    #[cfg(feature = "tls")]
    tls: Option<Box<TlsStream>>,
}

impl Detached {
    /// Registers the socket with the current runtime (call it inside one).
    pub(crate) fn attach(self) -> io::Result<Stream> {
        let sock = TcpStream::from_std(self.sock)?;
        #[cfg(feature = "tls")]
        if let Some(mut tls) = self.tls {
            tls.get_mut().0.put(sock);
            return Ok(Stream::Tls(tls));
        }
        Ok(Stream::Plain(sock))
    }
}

/// A connection out of its front stage.
pub(crate) struct Arrival {
    pub(crate) stream: Stream,
    /// The client's address: the peer's, or the one a trusted proxy named.
    pub(crate) remote: IpAddr,
    /// Bytes already read from the client (after PROXY and TLS): the region's first input.
    pub(crate) first: Vec<u8>,
    /// The region the routing prefix names (only when asked to route).
    pub(crate) route: Option<route::Route>,
}

/// Why a connection was dropped in its front stage.
#[derive(Debug)]
pub(crate) enum FrontError {
    Io,
    /// The listener expects PROXY and the header was missing or malformed.
    Proxy,
    Timeout,
}

impl From<io::Error> for FrontError {
    fn from(_: io::Error) -> FrontError {
        FrontError::Io
    }
}

/// Runs one connection's front stage, bounded by the handshake timeout.
///
/// `routing`: read until the routing prefix names a region (many regions on one port).
pub(crate) async fn front(
    sock: TcpStream,
    peer: SocketAddr,
    options: &ListenerOptions,
    config: &Arc<Config>,
    routing: bool,
) -> Result<Arrival, FrontError> {
    let stage = stage(sock, peer, options, config, routing);
    tokio::time::timeout(config.handshake_timeout, stage).await.map_err(|_| FrontError::Timeout)?
}

async fn stage(
    mut sock: TcpStream,
    peer: SocketAddr,
    options: &ListenerOptions,
    config: &Config,
    routing: bool,
) -> Result<Arrival, FrontError> {
    let _ = sock.set_nodelay(true);
    let mut remote = peer.ip();
    let mut buf = Vec::new();
    if options.proxy_protocol {
        let (header, len) = read_proxy(&mut sock, &mut buf).await?;
        remote = proxy::client_address(peer.ip(), &header, &config.trusted_proxies);
        buf.drain(..len);
    }
    #[cfg(feature = "tls")]
    if let Some(tls) = &options.tls {
        let io = super::tls::FrontIo::new(std::mem::take(&mut buf), sock);
        let mut tls = Box::new(tls.acceptor().accept(io).await?);
        let route = if routing { Some(read_prefix(&mut *tls, &mut buf).await?) } else { None };
        return Ok(Arrival { stream: Stream::Tls(tls), remote, first: buf, route });
    }
    let route = if routing { Some(read_prefix(&mut sock, &mut buf).await?) } else { None };
    Ok(Arrival { stream: Stream::Plain(sock), remote, first: buf, route })
}

/// Reads until `buf` starts with a whole PROXY header; reads in small steps
/// so little past the header is taken (it is kept, not lost, either way).
async fn read_proxy(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(proxy::ProxyHeader, usize), FrontError> {
    loop {
        match proxy::parse(buf) {
            Ok(proxy::Parsed::Done { header, len }) => return Ok((header, len)),
            Ok(proxy::Parsed::Incomplete) if buf.len() < proxy::MAX_LEN => {}
            Ok(proxy::Parsed::Incomplete) | Err(_) => return Err(FrontError::Proxy),
        }
        let room = proxy::MAX_LEN - buf.len();
        if read_some(sock, buf, room.min(256)).await? == 0 {
            return Err(FrontError::Proxy);
        }
    }
}

/// Reads until the routing prefix names a region (or cannot).
async fn read_prefix<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut Vec<u8>) -> Result<route::Route, FrontError> {
    loop {
        match route::route(buf) {
            route::Route::Incomplete if buf.len() < route::MAX_PREFIX => {}
            // route() never says Incomplete past MAX_PREFIX; if it did, nobody is named.
            other => return Ok(settled(other)),
        }
        let room = route::MAX_PREFIX - buf.len();
        if read_some(sock, buf, room.max(1)).await? == 0 {
            // The client ended before naming a region: the region it reaches
            // (the default, or none) answers what it did send.
            return Ok(settled(route::route(buf)));
        }
    }
}

async fn read_some<S: AsyncRead + Unpin>(sock: &mut S, buf: &mut Vec<u8>, most: usize) -> io::Result<usize> {
    let start = buf.len();
    buf.resize(start + most, 0);
    let read = sock.read(&mut buf[start..]).await;
    buf.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

/// A prefix that can no longer grow names the region it names so far, or none.
fn settled(route: route::Route) -> route::Route {
    match route {
        route::Route::Incomplete => route::Route::Untagged,
        done => done,
    }
}
