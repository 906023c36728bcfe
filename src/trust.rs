//! Trusted proxies (SPEC §15): which peers may name the client's address,
//! and the rightmost untrusted hop of `X-Forwarded-For` / `Forwarded`.
//!
//! A proxy appends the address it saw to the end of the chain, so only the
//! end can be believed: walking from the right, every hop that is itself a
//! trusted proxy is skipped, and the first one that is not is the client.
//! Anything to its left was written by the client and could say anything.
//! OpenSimulator takes the leftmost `X-Forwarded-For` entry from any peer,
//! which lets every client choose its own `x-remote-ip`.

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// A network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`; a bare
/// address is its own single-host network.
///
/// ```
/// use lsl_websocket::IpNet;
/// let net: IpNet = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.200.0.1".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// // IPv4-mapped IPv6 addresses are the IPv4 address they map.
/// assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
/// assert_eq!("127.0.0.1".parse::<IpNet>().unwrap().to_string(), "127.0.0.1/32");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not `address` or `address/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a network in CIDR notation (like 10.0.0.0/8 or ::1/128): {0:?}")]
pub struct ParseIpNetError(String);

impl IpNet {
    /// The network of `addr` with a `prefix`-bit mask; `None` when the
    /// prefix is longer than the address (32 or 128 bits).
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let addr = canonical(addr);
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= bits).then(|| IpNet { addr: mask(addr, prefix), prefix })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl FromStr for IpNet {
    type Err = ParseIpNetError;

    fn from_str(s: &str) -> Result<IpNet, ParseIpNetError> {
        let err = || ParseIpNetError(s.to_string());
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr.parse().map_err(|_| err())?;
        let prefix = match prefix {
            "" if !s.contains('/') => {
                if canonical(addr).is_ipv4() {
                    32
                } else {
                    128
                }
            }
            p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().map_err(|_| err())?,
            _ => return Err(err()),
        };
        IpNet::new(addr, prefix).ok_or_else(err)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Which header the trusted proxies write the client chain into. Only that
/// one is read: a client can send the other one through a proxy that leaves
/// it alone, and then every hop in it is the client's invention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx's
    /// `$proxy_add_x_forwarded_for`, HAProxy's `option forwardfor`).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }
}

/// The IPv4 address an IPv4-mapped IPv6 address maps, else the address.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

pub(crate) fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The client address of a request from `peer` whose `header` lines (in
/// the order received) are `values`: the rightmost hop that is not a
/// trusted proxy, when `peer` is one; `peer` otherwise.
///
/// A hop that cannot be read (`unknown`, an obfuscated `_name`, garbage)
/// ends the walk at the last trusted hop: that proxy is the furthest
/// address known for certain. When every hop is trusted, the leftmost is it.
pub(crate) fn client_of<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    header: ForwardedHeader,
    values: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    let mut known = canonical(peer);
    if !is_trusted(trusted, known) {
        return known;
    }
    for value in values.rev() {
        let Ok(value) = core::str::from_utf8(value) else { return known };
        for hop in value.rsplit(',') {
            let hop = match header {
                ForwardedHeader::XForwardedFor => Some(hop),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            };
            let Some(ip) = hop.and_then(hop_address) else { return known };
            if !is_trusted(trusted, ip) {
                return ip;
            }
            known = ip;
        }
    }
    known
}

/// The `for=` value of one `Forwarded` element, unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.eq_ignore_ascii_case("for").then(|| value.trim().trim_matches('"'))
    })
}

/// An address as proxies write one: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let host = match hop.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => hop.rsplit_once(':')?.0,
    };
    host.parse::<IpAddr>().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn networks_parse_and_contain() {
        assert_eq!("10.1.2.3/8".parse::<IpNet>().unwrap().to_string(), "10.0.0.0/8");
        assert_eq!("::1".parse::<IpNet>().unwrap().to_string(), "::1/128");
        assert_eq!("::ffff:10.0.0.1/32".parse::<IpNet>().unwrap().to_string(), "10.0.0.1/32");
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().contains(ip("203.0.113.1")));
        assert!(!"0.0.0.0/0".parse::<IpNet>().unwrap().contains(ip("::1")));
        assert!("2001:db8::/32".parse::<IpNet>().unwrap().contains(ip("2001:db8:ffff::1")));
        for bad in ["", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/+8", "::/129", "x/8", "10.0.0.0/8/8", "10.0.0.0 /8"] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rightmost_untrusted_hop() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let xff = |peer: &str, values: &[&str]| {
            client_of(ip(peer), &trusted, ForwardedHeader::XForwardedFor, values.iter().map(|v| v.as_bytes()))
        };
        // From an untrusted peer the header is ignored.
        assert_eq!(xff("192.0.2.9", &["1.1.1.1"]), ip("192.0.2.9"));
        // A client's own forged entries stay to the left of what the proxy appended.
        assert_eq!(xff("127.0.0.1", &["6.6.6.6, 192.0.2.9"]), ip("192.0.2.9"));
        // Trusted hops are skipped, over several header lines.
        assert_eq!(xff("127.0.0.1", &["6.6.6.6, 192.0.2.9", "10.1.1.1"]), ip("192.0.2.9"));
        assert_eq!(xff("127.0.0.1", &["[2001:db8::5]:4711,10.0.0.2:80"]), ip("2001:db8::5"));
        // No header: the proxy itself. Every hop trusted: the leftmost.
        assert_eq!(xff("127.0.0.1", &[]), ip("127.0.0.1"));
        assert_eq!(xff("127.0.0.1", &["10.0.0.3, 10.0.0.4"]), ip("10.0.0.3"));
        // An unreadable hop stops at the last address known for certain.
        assert_eq!(xff("127.0.0.1", &["192.0.2.9, unknown, 10.0.0.4"]), ip("10.0.0.4"));
        assert_eq!(xff("127.0.0.1", &["192.0.2.9,"]), ip("127.0.0.1"));
        assert_eq!(xff("::ffff:127.0.0.1", &["::ffff:192.0.2.9"]), ip("192.0.2.9"));
    }

    #[test]
    fn forwarded_elements() {
        let trusted = nets(&["127.0.0.1"]);
        let fwd = |values: &[&str]| {
            client_of(ip("127.0.0.1"), &trusted, ForwardedHeader::Forwarded, values.iter().map(|v| v.as_bytes()))
        };
        assert_eq!(fwd(&["for=192.0.2.60;proto=http;by=203.0.113.43"]), ip("192.0.2.60"));
        assert_eq!(fwd(&["for=6.6.6.6, For=\"[2001:db8:cafe::17]:4711\""]), ip("2001:db8:cafe::17"));
        assert_eq!(fwd(&["for=192.0.2.1:8080, for=127.0.0.1"]), ip("192.0.2.1"));
        assert_eq!(fwd(&["for=_hidden"]), ip("127.0.0.1"));
        assert_eq!(fwd(&["proto=https"]), ip("127.0.0.1"));
        // Only the configured header counts.
        let other =
            client_of(ip("127.0.0.1"), &trusted, ForwardedHeader::XForwardedFor, [&b"for=1.2.3.4"[..]].into_iter());
        assert_eq!(other, ip("127.0.0.1"));
    }
}
