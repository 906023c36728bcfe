//! Capability URLs: `ws://{authority}/lslws/{cap}/{path info}?{query}`.

use crate::key::Key;

/// The path prefix every capability lives under.
pub const PATH_PREFIX: &str = "/lslws/";

/// Renders the URL of a capability.
pub(crate) fn format_url(secure: bool, authority: &str, cap: Key) -> String {
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{authority}{PATH_PREFIX}{cap}/")
}

/// A request target split into capability, path info and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    pub(crate) cap: Key,
    pub(crate) path_info: &'a str,
    pub(crate) query: &'a str,
}

/// Splits a request target; `None` when it names no capability.
///
/// `/lslws/{cap}` and `/lslws/{cap}/` both name the capability; whatever
/// follows the slash after it is path info.
pub(crate) fn parse_target(target: &str) -> Option<Target<'_>> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let (cap, path_info) = match rest.split_once('/') {
        Some((cap, info)) => (cap, info),
        None => (rest, ""),
    };
    Some(Target { cap: cap.parse().ok()?, path_info, query })
}

/// The capability named by a URL this crate minted (any scheme and authority).
pub(crate) fn cap_of_url(url: &str) -> Option<Key> {
    let after_scheme = url.split_once("://")?.1;
    let path = &after_scheme[after_scheme.find('/')?..];
    let target = parse_target(path)?;
    (target.path_info.is_empty() && target.query.is_empty()).then_some(target.cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let cap = "0123abcd-0000-4000-8000-000000000001";
        let target = format!("/lslws/{cap}/a/b?x=1,2");
        let t = parse_target(&target).unwrap();
        assert_eq!((t.cap.to_string().as_str(), t.path_info, t.query), (cap, "a/b", "x=1,2"));
        assert_eq!(parse_target(&format!("/lslws/{cap}")).unwrap().path_info, "");
        assert!(parse_target("/").is_none());
        assert!(parse_target("/lslws/nope/").is_none());
        let url = format_url(false, "h:1", t.cap);
        assert_eq!(url, format!("ws://h:1/lslws/{cap}/"));
        assert_eq!(cap_of_url(&url), Some(t.cap));
        assert_eq!(cap_of_url("garbage"), None);
    }
}
