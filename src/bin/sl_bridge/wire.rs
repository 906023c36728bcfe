//! The bridge's text formats, as `bridge/bridge.lsl` writes and reads them.
//!
//! - **Record line** (a batch delivery to the script, one line per client
//!   event): `<kind> <session> <escaped text>\n`, kind `open`, `text` or `close`.
//! - **Push line** (a push body, or the answer to a batch delivery):
//!   `<target> <escaped text>\n`; target a session key (send to it), `*`
//!   (every session of the script) or `!<session>` (close it with 1000, the
//!   text as reason). The push is answered with one status per line, `\n`
//!   between them: `0` (`WS_OK`) or a `WS_ERR_*` number.
//! - **Escaping**: `%XX` as LSL's `llUnescapeURL` reads it. The bridge escapes
//!   only `%`, space, CR and LF; it reads any `%XX` (so `llEscapeURL` output works too).

use lsl_websocket::Key;
use sha2::{Digest, Sha256};

/// What happened to a client, as the script's `x-bridge-event` header names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A client connected; text: its path info.
    Open,
    /// A client sent a message; text: the message.
    Text,
    /// A client went away; text: `"<code> <reason>"`.
    Close,
}

impl Kind {
    /// The header value and the record line's first word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Open => "open",
            Kind::Text => "text",
            Kind::Close => "close",
        }
    }
}

/// One client event waiting for (or on its way to) the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The client's session key.
    pub session: Key,
    /// What happened.
    pub kind: Kind,
    /// Path info, message or close code and reason.
    pub text: String,
}

/// Escapes `%`, space, CR and LF as `%XX`.
pub fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            ' ' => out.push_str("%20"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
}

/// Bytes `escape` makes of `text`.
pub fn escaped_len(text: &str) -> usize {
    text.len() + 2 * text.bytes().filter(|b| matches!(b, b'%' | b' ' | b'\n' | b'\r')).count()
}

/// Reads `%XX` escapes (as UTF-8 bytes); a `%` not followed by two hex
/// digits stays as it is; bytes that are not UTF-8 become U+FFFD.
pub fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = bytes.get(i + 1..i + 3)
            && let Ok(s) = std::str::from_utf8(h)
            && let Ok(b) = u8::from_str_radix(s, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Bytes of one record line.
pub fn record_line_len(r: &Record) -> usize {
    // kind, space, 36-character key, space, text, newline
    r.kind.as_str().len() + 1 + 36 + 1 + escaped_len(&r.text) + 1
}

/// Appends one record line.
pub fn record_line(r: &Record, out: &mut String) {
    out.push_str(r.kind.as_str());
    out.push(' ');
    out.push_str(&r.session.to_string());
    out.push(' ');
    escape(&r.text, out);
    out.push('\n');
}

/// One line of a push (or of the answer to a batch delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// To one session.
    Send(Key, String),
    /// To every session of the script.
    Broadcast(String),
    /// Close the session with 1000 and this reason.
    Close(Key, String),
    /// A line that is none of these (answered `WS_ERR_NO_SESSION`).
    Bad,
}

/// Reads a push body: one [`Push`] per non-empty line.
pub fn parse_push(body: &str) -> Vec<Push> {
    body.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (target, text) = line.split_once(' ').unwrap_or((line, ""));
            let text = unescape(text);
            if target == "*" {
                Push::Broadcast(text)
            } else if let Some(k) = target.strip_prefix('!') {
                k.parse().map_or(Push::Bad, |k| Push::Close(k, text))
            } else {
                target.parse().map_or(Push::Bad, |k| Push::Send(k, text))
            }
        })
        .collect()
}

/// A registration's query (`/register?url=…&token=…&sig=…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The script's HTTP-in URL.
    pub url: String,
    /// The bridge's name for the script from an earlier registration; `""` for a first one.
    pub token: String,
    /// Lower-case hex SHA-256 of `secret + "\n" + url + "\n" + token`.
    pub sig: String,
}

/// Reads the query of a registration target; `None` when `url` or `sig` is missing.
pub fn parse_registration(target: &str) -> Option<Registration> {
    let query = target.split_once('?')?.1;
    let (mut url, mut token, mut sig) = (None, String::new(), None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // A `+` in a query means a space; llEscapeURL never writes one.
        let value = unescape(&value.replace('+', " "));
        match name {
            "url" => url = Some(value),
            "token" => token = value,
            "sig" => sig = Some(value),
            _ => {}
        }
    }
    Some(Registration { url: url?, token, sig: sig? })
}

/// Whether `sig` is the registration's signature under `secret` (compared in constant time).
pub fn signature_ok(secret: &str, r: &Registration) -> bool {
    let expected = hex::encode(Sha256::digest(format!("{secret}\n{}\n{}", r.url, r.token)));
    let given = r.sig.to_ascii_lowercase();
    expected.len() == given.len() && expected.bytes().zip(given.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Whether `url` is one the bridge will POST to: `http://` or `https://` and a host.
pub fn plausible_http_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    rest.is_some_and(|r| {
        !r.is_empty() && !r.starts_with('/') && url.len() <= 1024 && !url.contains(char::is_whitespace)
    })
}

/// Compares two secrets in constant time (for the push header).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "0b8c5d2e-8f4a-4c1e-9a51-3e2f4d5c6b7a";

    #[test]
    fn escape_roundtrip_and_length() {
        for text in ["", "plain", "a b%c\nd\re", "100% ✓ ünïcode", "%zz%4", "%%"] {
            let mut e = String::new();
            escape(text, &mut e);
            assert_eq!(e.len(), escaped_len(text));
            assert!(!e.contains([' ', '\n', '\r']));
            assert_eq!(unescape(&e), text);
        }
        // llEscapeURL's output reads too, and bad escapes stay literal.
        assert_eq!(unescape("caf%C3%A9%2"), "café%2");
        assert_eq!(unescape("%FF"), "\u{FFFD}");
    }

    #[test]
    fn record_lines_have_the_length_counted() {
        let r = Record { session: S.parse().unwrap(), kind: Kind::Close, text: "1000 bye now".into() };
        let mut out = String::new();
        record_line(&r, &mut out);
        assert_eq!(out, format!("close {S} 1000%20bye%20now\n"));
        assert_eq!(out.len(), record_line_len(&r));
    }

    #[test]
    fn push_lines() {
        let body = format!("{S} hi%20there\n* all of you\r\n!{S} done\nnot-a-key x\n\n{S}");
        assert_eq!(
            parse_push(&body),
            vec![
                Push::Send(S.parse().unwrap(), "hi there".into()),
                Push::Broadcast("all of you".into()),
                Push::Close(S.parse().unwrap(), "done".into()),
                Push::Bad,
                Push::Send(S.parse().unwrap(), String::new()),
            ]
        );
    }

    #[test]
    fn registration_signature() {
        let url = "http://sim.example:12046/cap/abc";
        let sig = hex::encode(Sha256::digest(format!("s3cret\n{url}\ntok")));
        let target = format!("/register?url=http%3A%2F%2Fsim.example%3A12046%2Fcap%2Fabc&token=tok&sig={sig}");
        let r = parse_registration(&target).unwrap();
        assert_eq!(r.url, url);
        assert!(signature_ok("s3cret", &r));
        assert!(!signature_ok("s3cre", &r));
        assert!(!signature_ok("s3cret", &Registration { token: "other".into(), ..r.clone() }));
        assert!(parse_registration("/register?url=x").is_none());
        assert!(parse_registration("/register").is_none());
    }

    #[test]
    fn urls_the_bridge_posts_to() {
        assert!(plausible_http_url("http://127.0.0.1:9/lslhttp/x/"));
        assert!(plausible_http_url("https://simhost-0a.agni.secondlife.io:12043/cap/x"));
        for bad in ["ftp://x", "http://", "http:///x", "http://a b", "javascript:x"] {
            assert!(!plausible_http_url(bad), "{bad}");
        }
    }
}
