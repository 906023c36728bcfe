//! Capability URLs: `ws://{authority}/lslws/{cap}/{path info}?{query}`.

use crate::key::Key;

/// The path prefix every capability lives under.
pub const PATH_PREFIX: &str = "/lslws/";

/// Renders the URL of a capability.
pub(crate) fn format_url(secure: bool, authority: &str, cap: Key) -> String {
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{authority}{PATH_PREFIX}{cap}/")
}

/// Renders an HTTP-in URL (SPEC §8): `http://{authority}/lslhttp/{cap}/`,
/// `https://{authority}/lslhttps/{cap}/` when secure.
pub(crate) fn format_http_url(secure: bool, authority: &str, cap: Key) -> String {
    if secure { format!("https://{authority}/lslhttps/{cap}/") } else { format!("http://{authority}/lslhttp/{cap}/") }
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
/// Path info is what follows the capability, starting with `/`, as Second
/// Life's `x-path-info` (SPEC §2, §8): `/lslws/{cap}/a/b` → `/a/b`. The
/// granted URL itself, `/lslws/{cap}/` or `/lslws/{cap}`, has path info `""`.
pub(crate) fn parse_target(target: &str) -> Option<Target<'_>> {
    parse_target_under(target, PATH_PREFIX)
}

/// As [`parse_target`], for capabilities under another prefix (HTTP-in's).
pub(crate) fn parse_target_under<'a>(target: &'a str, prefix: &str) -> Option<Target<'a>> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix(prefix)?;
    let (cap, path_info) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path_info = if path_info == "/" { "" } else { path_info };
    Some(Target { cap: cap.parse().ok()?, path_info, query })
}

/// The capability named by a URL this crate minted (any scheme and authority).
pub(crate) fn cap_of_url(url: &str) -> Option<Key> {
    let after_scheme = url.split_once("://")?.1;
    let path = &after_scheme[after_scheme.find('/')?..];
    let target = parse_target(path)?;
    (target.path_info.is_empty() && target.query.is_empty()).then_some(target.cap)
}

/// The capability of an HTTP-in URL this crate minted, and whether it is the secure kind.
pub(crate) fn cap_of_http_url(url: &str) -> Option<(Key, bool)> {
    let after_scheme = url.split_once("://")?.1;
    let path = &after_scheme[after_scheme.find('/')?..];
    let (prefix, secure) = if path.starts_with("/lslhttps/") { ("/lslhttps/", true) } else { ("/lslhttp/", false) };
    let target = parse_target_under(path, prefix)?;
    (target.path_info.is_empty() && target.query.is_empty()).then_some((target.cap, secure))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let cap = "0123abcd-0000-4000-8000-000000000001";
        let target = format!("/lslws/{cap}/a/b?x=1,2");
        let t = parse_target(&target).unwrap();
        assert_eq!((t.cap.to_string().as_str(), t.path_info, t.query), (cap, "/a/b", "x=1,2"));
        let info = |rest: &str| {
            let target = format!("/lslws/{cap}{rest}");
            let t = parse_target(&target).unwrap();
            (t.path_info.to_string(), t.query.to_string())
        };
        // SPEC §2 and §8: path info starts with `/`; the granted URL itself has none.
        assert_eq!(info(""), ("".into(), "".into()));
        assert_eq!(info("/"), ("".into(), "".into()));
        assert_eq!(info("/a/b"), ("/a/b".into(), "".into()));
        assert_eq!(info("/a/b?x=1"), ("/a/b".into(), "x=1".into()));
        assert_eq!(info("?q"), ("".into(), "q".into()));
        assert_eq!(info("/?q"), ("".into(), "q".into()));
        assert_eq!(info("//x"), ("//x".into(), "".into()));
        assert_eq!(info("/a/"), ("/a/".into(), "".into()));
        assert!(parse_target("/").is_none());
        assert!(parse_target("/lslws/nope/").is_none());
        let url = format_url(false, "h:1", t.cap);
        assert_eq!(url, format!("ws://h:1/lslws/{cap}/"));
        assert_eq!(cap_of_url(&url), Some(t.cap));
        assert_eq!(cap_of_url("garbage"), None);
    }
}
