//! The headers a script may read of one HTTP-in request (`llGetHTTPHeader`).
//!
//! The request head is kept as it arrived and parsed again only when the
//! script asks: most scripts never read a header, and building a table of
//! every header for every request was most of HTTP-in's allocations.

use core::net::IpAddr;

use super::{charset, head};
use crate::url;

/// One request's readable headers: its raw head and the client's address.
#[derive(Debug, Default)]
pub(crate) struct Readable {
    /// The request head, exactly as received (it parsed once, so it parses again).
    head: Box<[u8]>,
    remote: Option<IpAddr>,
}

impl Readable {
    /// `head` is the whole request head, up to and including its blank line.
    pub(crate) fn new(head: &[u8], remote: IpAddr) -> Readable {
        Readable { head: head.into(), remote: Some(remote) }
    }

    /// The value of `name` (lower case), cut to `max` bytes; `x-script-url`
    /// is `script_url`. The core's own names are never a client's header.
    pub(crate) fn get(&self, name: &str, script_url: &str, max: usize) -> Option<String> {
        let cut = |s: &str| charset::cut_str(s, max).to_string();
        if name == "x-script-url" {
            return Some(cut(script_url));
        }
        if name == "x-remote-ip" {
            return self.remote.map(|ip| ip.to_string());
        }
        // Names are matched lower case, as LSL asks for them.
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut headers = [httparse::EMPTY_HEADER; head::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&self.head).ok()?;
        let target = || {
            let path = req.path?;
            let prefix = if path.starts_with(head::SECURE_PREFIX) { head::SECURE_PREFIX } else { head::PREFIX };
            url::parse_target_under(path, prefix)
        };
        match name {
            "x-path-info" => target().map(|t| cut(t.path_info)),
            "x-query-string" => target().map(|t| cut(t.query)),
            _ => {
                let h = req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?;
                Some(cut(String::from_utf8_lossy(h.value).trim()))
            }
        }
    }
}
