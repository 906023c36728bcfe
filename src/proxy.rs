//! The PROXY protocol header (HAProxy's, versions 1 and 2), Sans-IO.
//!
//! A reverse proxy that passes TCP through (nginx's stream module, HAProxy in
//! `mode tcp`) can prefix each connection with one header naming the
//! client's address. Whether a listener expects it is the listener's own
//! setting, never guessed from the bytes: the PROXY specification forbids
//! accepting it where it is not expected, because any client could then
//! choose its address. An adapter with such a listener feeds the first bytes
//! of each connection to [`parse`] until it returns [`Parsed::Done`], skips
//! the header's `len` bytes (before TLS, if the listener has TLS), and
//! reports [`client_address`] as the connection's `remote` in
//! [`Input::Accepted`](crate::Input::Accepted). The address is taken only
//! from peers in [`Config::trusted_proxies`](crate::Config::trusted_proxies).
//!
//! ```
//! use lsl_websocket::proxy::{self, Parsed};
//!
//! let bytes = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n";
//! let Ok(Parsed::Done { header, len }) = proxy::parse(bytes) else { panic!() };
//! assert_eq!(header.source.unwrap().to_string(), "192.0.2.7:51234");
//! assert_eq!(&bytes[len..len + 3], b"GET");
//! // Any prefix of a header is Incomplete, never an error.
//! assert_eq!(proxy::parse(&bytes[..9]), Ok(Parsed::Incomplete));
//!
//! let trusted = ["127.0.0.1/32".parse().unwrap()];
//! let proxy_peer = "127.0.0.1".parse().unwrap();
//! assert_eq!(proxy::client_address(proxy_peer, &header, &trusted).to_string(), "192.0.2.7");
//! // From an untrusted peer the header is skipped but its address ignored.
//! let stranger = "198.51.100.9".parse().unwrap();
//! assert_eq!(proxy::client_address(stranger, &header, &trusted), stranger);
//! ```

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::trust::{IpNet, canonical, is_trusted};

/// The version 2 signature: the first 12 bytes of every v2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The start of every version 1 header.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest version 1 header, CRLF included (the specification's 107 bytes).
const V1_MAX: usize = 107;

/// Longest header accepted: a version 2 header with up to 4 KiB of address
/// and TLV data. Longer ones are [`ProxyError::TooLong`] (a proxy sending
/// more is misconfigured, and holding it would let one connection pin memory).
pub const MAX_LEN: usize = 16 + 4096;

/// One PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// The client's address; `None` for a `LOCAL` (v2) or `UNKNOWN` (v1)
    /// header, and for address families other than IPv4 and IPv6: the
    /// connection's own peer address applies then.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when given.
    pub destination: Option<SocketAddr>,
}

/// Outcome of offering the first bytes of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are a valid start of a header; read more.
    Incomplete,
    /// A whole header: it and its length in bytes (what to skip).
    Done {
        /// The header.
        header: ProxyHeader,
        /// Bytes the header took; what follows is the connection's own data.
        len: usize,
    },
}

/// A connection on a PROXY listener that does not start with a valid
/// header. The adapter closes it: nothing that follows can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The bytes start with neither the v1 `PROXY ` nor the v2 signature.
    #[error("not a PROXY protocol header")]
    NotProxy,
    /// The header is longer than [`MAX_LEN`] (v2) or 107 bytes (v1).
    #[error("PROXY header too long")]
    TooLong,
    /// The header breaks the specification.
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Parses a PROXY header (version 1 or 2) from the start of `buf`.
///
/// Any split of the input gives the same result: a prefix of a valid
/// header is [`Parsed::Incomplete`], so call it again with more bytes.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() { Ok(Parsed::Incomplete) } else { parse_v2(buf) };
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        return if n < V1_PREFIX.len() { Ok(Parsed::Incomplete) } else { parse_v1(buf) };
    }
    Err(ProxyError::NotProxy)
}

/// The client address of a connection from `peer` that sent `header`: the
/// header's source when `peer` is a trusted proxy and the header names one,
/// else `peer` itself (SPEC §15: from any other peer the header is ignored).
pub fn client_address(peer: IpAddr, header: &ProxyHeader, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    match header.source {
        Some(source) if is_trusted(trusted, peer) => canonical(source.ip()),
        _ => peer,
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX { Err(ProxyError::TooLong) } else { Ok(Parsed::Incomplete) };
    };
    let line = window[..lf].strip_suffix(b"\r").ok_or(ProxyError::Malformed("v1 line must end with CRLF"))?;
    let line = core::str::from_utf8(line).map_err(|_| ProxyError::Malformed("v1 header is not ASCII"))?;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY"
    let header = match fields.next() {
        // The rest of an UNKNOWN line is to be ignored (the specification's words).
        Some("UNKNOWN") => ProxyHeader { version: 1, source: None, destination: None },
        Some(family @ ("TCP4" | "TCP6")) => {
            let v6 = family == "TCP6";
            let mut next = || fields.next().ok_or(ProxyError::Malformed("v1 header has too few fields"));
            let (src, dst, sport, dport) = (next()?, next()?, next()?, next()?);
            if fields.next().is_some() {
                return Err(ProxyError::Malformed("v1 header has too many fields"));
            }
            let (src, dst) = (v1_ip(src, v6)?, v1_ip(dst, v6)?);
            let (sport, dport) = (v1_port(sport)?, v1_port(dport)?);
            ProxyHeader {
                version: 1,
                source: Some(SocketAddr::new(src, sport)),
                destination: Some(SocketAddr::new(dst, dport)),
            }
        }
        _ => return Err(ProxyError::Malformed("v1 protocol must be TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Parsed::Done { header, len: lf + 1 })
}

fn v1_ip(text: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let ip = if v6 { text.parse::<Ipv6Addr>().map(IpAddr::V6) } else { text.parse::<Ipv4Addr>().map(IpAddr::V4) };
    ip.map_err(|_| ProxyError::Malformed("v1 address does not match its family"))
}

fn v1_port(text: &str) -> Result<u16, ProxyError> {
    // Decimal without a sign or leading zeros, as the specification writes them.
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    text.parse().ok().filter(|_| canonical).ok_or(ProxyError::Malformed("v1 port is not a number in 0..=65535"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(fixed) = buf.get(..16) else { return Ok(Parsed::Incomplete) };
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError::Malformed("v2 version nibble must be 2"));
    }
    if command > 1 {
        return Err(ProxyError::Malformed("v2 command must be LOCAL or PROXY"));
    }
    let (family, transport) = (fixed[13] >> 4, fixed[13] & 0x0f);
    if family > 3 || transport > 2 {
        return Err(ProxyError::Malformed("v2 family or transport unknown"));
    }
    let len = 16 + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > MAX_LEN {
        return Err(ProxyError::TooLong);
    }
    let Some(body) = buf.get(16..len) else { return Ok(Parsed::Incomplete) };
    // Addresses come first; TLVs after them are skipped (none carries the client's address).
    let need = match family {
        1 => 12,
        2 => 36,
        3 => 216,
        _ => 0,
    };
    if body.len() < need {
        return Err(ProxyError::Malformed("v2 address block shorter than its family needs"));
    }
    // LOCAL: the proxy's own connection (a health check); the peer address applies.
    let (source, destination) = match (command, family) {
        (1, 1) => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]));
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            (Some(SocketAddr::new(ip(0), port(8))), Some(SocketAddr::new(ip(4), port(10))))
        }
        (1, 2) => {
            let ip = |at: usize| {
                let mut octets = [0; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            (Some(SocketAddr::new(ip(0), port(32))), Some(SocketAddr::new(ip(16), port(34))))
        }
        _ => (None, None),
    };
    Ok(Parsed::Done { header: ProxyHeader { version: 2, source, destination }, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let done = |b: &[u8]| match parse(b) {
            Ok(Parsed::Done { header, len }) => (header, len),
            other => panic!("{other:?}"),
        };
        let (h, len) = done(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\nrest");
        assert_eq!((h.source.unwrap().to_string().as_str(), len), ("[2001:db8::1]:65535", 36));
        let (h, _) = done(b"PROXY UNKNOWN whatever follows\r\n");
        assert_eq!(h.source, None);
        let (h, _) = done(b"PROXY UNKNOWN\r\n");
        assert_eq!(h, ProxyHeader { version: 1, source: None, destination: None });
    }

    #[test]
    fn v1_refusals() {
        let err = |b: &[u8]| parse(b).unwrap_err();
        assert_eq!(err(b"GET / HTTP/1.1\r\n"), ProxyError::NotProxy);
        assert_eq!(err(b"proxy TCP4"), ProxyError::NotProxy);
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(matches!(err(bad), ProxyError::Malformed(_)), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(err(&[b"PROXY ".as_slice(), &[b'x'; 101]].concat()), ProxyError::TooLong);
        // 107 bytes with the CRLF at the end is still a header.
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 91], b"\r\n"].concat();
        assert_eq!(long.len(), 107);
        assert!(matches!(parse(&long), Ok(Parsed::Done { len: 107, .. })));
    }

    #[test]
    fn v2_families_commands_and_tlvs() {
        let mut body = vec![192, 0, 2, 7, 10, 0, 0, 1, 0xc8, 0x22, 0x01, 0xbb];
        body.extend_from_slice(&[0x03, 0x00, 0x04, 1, 2, 3, 4]); // a CRC32C TLV, skipped
        let bytes = [v2(1, 0x11, &body), b"GET".to_vec()].concat();
        let Ok(Parsed::Done { header, len }) = parse(&bytes) else { panic!() };
        assert_eq!(header.source.unwrap().to_string(), "192.0.2.7:51234");
        assert_eq!(header.destination.unwrap().to_string(), "10.0.0.1:443");
        assert_eq!(&bytes[len..], b"GET");

        let mut body6 = vec![0; 36];
        body6[15] = 1; // ::1
        body6[31] = 2; // ::2
        body6[33] = 80;
        let Ok(Parsed::Done { header, .. }) = parse(&v2(1, 0x21, &body6)) else { panic!() };
        assert_eq!(header.source.unwrap().to_string(), "[::1]:80");

        // LOCAL (a health check) and AF_UNSPEC carry no client.
        let Ok(Parsed::Done { header, len }) = parse(&v2(0, 0x00, &[])) else { panic!() };
        assert_eq!((header.source, len), (None, 16));
        let Ok(Parsed::Done { header, .. }) = parse(&v2(0, 0x11, &body)) else { panic!() };
        assert_eq!(header.source, None);
        let Ok(Parsed::Done { header, .. }) = parse(&v2(1, 0x31, &[0; 216])) else { panic!() };
        assert_eq!(header.source, None);
    }

    #[test]
    fn v2_refusals() {
        let err = |b: &[u8]| parse(b).unwrap_err();
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert!(matches!(err(&bad_version), ProxyError::Malformed(_)));
        assert!(matches!(err(&v2(2, 0x11, &[0; 12])), ProxyError::Malformed(_)));
        assert!(matches!(err(&v2(1, 0x41, &[0; 12])), ProxyError::Malformed(_)));
        assert!(matches!(err(&v2(1, 0x13, &[0; 12])), ProxyError::Malformed(_)));
        assert!(matches!(err(&v2(1, 0x11, &[0; 11])), ProxyError::Malformed(_)));
        assert!(matches!(err(&v2(1, 0x21, &[0; 35])), ProxyError::Malformed(_)));
        let mut too_long = v2(1, 0x11, &[]);
        too_long[14..16].copy_from_slice(&(MAX_LEN as u16 - 15).to_be_bytes());
        assert_eq!(err(&too_long), ProxyError::TooLong);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let headers =
            [b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\n".to_vec(), v2(1, 0x11, &[1; 12]), v2(0, 0x00, &[9; 40])];
        for h in headers {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Ok(Parsed::Incomplete), "cut {cut} of {h:?}");
            }
            assert!(matches!(parse(&h), Ok(Parsed::Done { len, .. }) if len == h.len()));
        }
    }

    #[test]
    fn the_address_counts_only_from_trusted_peers() {
        let header = ProxyHeader { version: 2, source: Some("192.0.2.7:1".parse().unwrap()), destination: None };
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_address(ip("10.1.2.3"), &header, &trusted), ip("192.0.2.7"));
        // An IPv4-mapped peer is the IPv4 address it maps.
        assert_eq!(client_address(ip("::ffff:10.1.2.3"), &header, &trusted), ip("192.0.2.7"));
        assert_eq!(client_address(ip("11.0.0.1"), &header, &trusted), ip("11.0.0.1"));
        assert_eq!(client_address(ip("10.1.2.3"), &header, &[]), ip("10.1.2.3"));
        let local = ProxyHeader { source: None, ..header };
        assert_eq!(client_address(ip("10.1.2.3"), &local, &trusted), ip("10.1.2.3"));
    }
}
