//! HTTP-in checks (SPEC §8) against the `--http-url` and its echo script:
//! `/status/<n>` answers status n, `/header/<name>` the request header as
//! the script reads it, `/method` the method, `/hold` never, anything else
//! the body as the script received it (as `echo_server`'s script does).

use std::time::{Duration, Instant};

use crate::Probe;
use crate::checks::Outcome;
use crate::handshake::mutate_cap;
use crate::http::{Conn, Response, call, exchange, get_expect, request, target};
use crate::net::shown;

/// What the SPEC says the script's answers carry unless `llSetContentType` chose another.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
/// A body the script must see as UTF-8 unchanged.
const UTF8: &str = "Content-Type: text/plain; charset=utf-8\r\n";

/// `POST sub` with `headers` and `body` must be echoed as `want`.
fn echo(p: &Probe, what: &str, headers: &str, body: &[u8], want: &[u8]) -> Outcome {
    let r = call(p, "POST", "/echo", headers, body)?;
    r.expect(what, 200, want)
}

pub fn http_unknown_cap_404(p: &Probe) -> Outcome {
    let t = p.http()?;
    let other = t.with_path(mutate_cap(&t.path));
    for (method, sub) in [("GET", ""), ("POST", "/echo"), ("GET", "/status/200")] {
        let what = format!("{method} {}", target(&other, sub));
        let (r, _) =
            exchange(p, &other, &request(&other, method, sub, "", b"x")).map_err(|e| format!("{what}: {e}"))?;
        if r.head.status != 404 {
            return Err(format!("{what}: got {:?}, want 404", r.head.first_line()));
        }
    }
    Ok(())
}

pub fn http_method_405(p: &Probe) -> Outcome {
    for method in ["PATCH", "HEAD", "OPTIONS"] {
        let r = call(p, method, "/echo", "", b"")?;
        if r.head.status != 405 {
            return Err(format!("{method}: got {:?}, want 405", r.head.first_line()));
        }
        for allowed in ["GET", "POST", "PUT", "DELETE"] {
            if !r.head.has_token("allow", allowed) {
                return Err(format!("{method}: the 405's Allow {:?} lacks {allowed}", r.head.header("allow")));
            }
        }
    }
    Ok(())
}

pub fn http_head_431(p: &Probe) -> Outcome {
    // 36 headers of 240-byte values: a head over 8 KiB.
    let pad: String = (0..36).map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(240))).collect();
    let r = call(p, "GET", "/echo", &pad, b"")?;
    if r.head.status != 431 {
        return Err(format!("a head of {} bytes: got {:?}, want 431", pad.len() + 100, r.head.first_line()));
    }
    Ok(())
}

pub fn http_body_echo(p: &Probe) -> Outcome {
    for body in ["hello", "", "a,b,c\r\ntwo\nlines", "héllo ✓ 🦀", "{\"json\": [1, 2]}", "%41+&="] {
        echo(p, &format!("POST {}", shown(body.as_bytes())), UTF8, body.as_bytes(), body.as_bytes())?;
    }
    let r = call(p, "PUT", "/echo", UTF8, b"put body")?;
    r.expect("PUT", 200, b"put body")?;
    if r.head.header("content-type").is_none_or(|v| !v.eq_ignore_ascii_case(TEXT_PLAIN)) {
        return Err(format!("the answer's Content-Type is {:?}, want {TEXT_PLAIN:?}", r.head.header("content-type")));
    }
    // The granted URL without its trailing '/' reaches the same script.
    let t = p.http()?;
    let bare = t.with_path(t.path.split('?').next().unwrap_or("").trim_end_matches('/').to_string());
    let what = format!("POST {}", bare.path);
    let (r, _) = exchange(p, &bare, &request(&bare, "POST", "", UTF8, b"bare")).map_err(|e| format!("{what}: {e}"))?;
    r.expect(&what, 200, b"bare")
}

pub fn http_body_2048(p: &Probe) -> Outcome {
    let ascii: Vec<u8> = (0..3000).map(|i| b'a' + (i % 26) as u8).collect();
    echo(p, "3000 ASCII bytes", UTF8, &ascii, &ascii[..2048])?;
    // 1 + 3 × 1000 bytes of UTF-8: byte 2048 falls inside a '€'.
    let euro = format!("a{}", "€".repeat(1000));
    let want = format!("a{}", "€".repeat(682));
    echo(p, "3001 bytes of 'a' and '€'", UTF8, euro.as_bytes(), want.as_bytes())?;
    // 1500 ISO-8859-1 bytes become 3000 bytes of UTF-8: the limit counts those.
    echo(p, "1500 ISO-8859-1 'é' bytes", "Content-Type: text/plain\r\n", &[0xe9; 1500], "é".repeat(1024).as_bytes())
}

pub fn http_latin1_default(p: &Probe) -> Outcome {
    let raw = b"caf\xe9 \x80\xa9\xff";
    let want = "café \u{80}©ÿ".as_bytes();
    echo(p, "no Content-Type", "", raw, want)?;
    echo(p, "Content-Type: text/plain", "Content-Type: text/plain\r\n", raw, want)?;
    echo(p, "charset=ISO-8859-1", "Content-Type: text/plain; charset=ISO-8859-1\r\n", raw, want)
}

pub fn http_utf8_declared(p: &Probe) -> Outcome {
    let body = "héllo ✓ 🦀 ÿ".as_bytes();
    for ct in ["text/plain; charset=utf-8", "text/plain;charset=UTF-8", "application/json; charset=\"utf-8\""] {
        echo(p, &format!("Content-Type: {ct}"), &format!("Content-Type: {ct}\r\n"), body, body)?;
    }
    Ok(())
}

pub fn http_invalid_utf8_fffd(p: &Probe) -> Outcome {
    echo(p, "a lone \\xff", UTF8, b"ab\xffcd", "ab\u{fffd}cd".as_bytes())?;
    echo(p, "a character cut at the end", UTF8, b"ok \xe2\x82", "ok \u{fffd}".as_bytes())
}

pub fn http_chunked(p: &Probe) -> Outcome {
    let t = p.http()?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\n{UTF8}Transfer-Encoding: chunked\r\n\r\n",
        target(t, "/echo"),
        t.authority
    );
    // "ö" split across chunks, a chunk extension, upper-case hex.
    let chunks = b"3\r\nhel\r\n5;ext=1\r\nlo w\xc3\r\nA\r\n\xb6rld, and \r\n0\r\n\r\n";
    let bytes = [head.as_bytes(), chunks].concat();
    let (r, _) = exchange(p, t, &bytes).map_err(|e| format!("a chunked body: {e}"))?;
    r.expect("a chunked body", 200, "hello wörld, and ".as_bytes())?;
    // Over the limit in chunks: the same 2048-byte cut.
    let mut long = head.into_bytes();
    for _ in 0..3 {
        long.extend_from_slice(format!("3E8\r\n{}\r\n", "c".repeat(1000)).as_bytes());
    }
    long.extend_from_slice(b"0\r\n\r\n");
    let (r, _) = exchange(p, t, &long).map_err(|e| format!("3000 bytes in chunks: {e}"))?;
    r.expect("3000 bytes in chunks", 200, "c".repeat(2048).as_bytes())
}

pub fn http_expect_100(p: &Probe) -> Outcome {
    let t = p.http()?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\n{UTF8}Expect: 100-continue\r\nContent-Length: 7\r\n\r\n",
        target(t, "/echo"),
        t.authority
    );
    let mut conn = Conn::open(p, t)?;
    conn.send(head.as_bytes())?;
    // The body is held back until the server asks for it.
    let interim = conn.head().map_err(|e| format!("waiting for 100 Continue before sending the body: {e}"))?;
    if interim.status != 100 {
        return Err(format!("before the body: got {:?}, want 100 Continue", interim.first_line()));
    }
    conn.send(b"go body")?;
    conn.response(false)?.expect("the body after 100 Continue", 200, b"go body")
}

/// A request, and the status and body of its answer.
type Step = (Vec<u8>, u16, &'static [u8]);

/// The requests of the keep-alive and pipelining checks, and their answers.
fn sequence(p: &Probe) -> Result<Vec<Step>, String> {
    let t = p.http()?;
    Ok(vec![
        (request(t, "POST", "/echo", UTF8, b"first"), 200, b"first"),
        (request(t, "GET", "/status/201", "", b""), 201, b""),
        (request(t, "GET", "/method", "", b""), 200, b"GET"),
        (request(t, "DELETE", "/method", "", b""), 200, b"DELETE"),
        (request(t, "PUT", "/echo", UTF8, b"last"), 200, b"last"),
    ])
}

fn expect_open(r: &Response, what: &str) -> Outcome {
    if r.head.has_token("connection", "close") {
        return Err(format!("{what}: the answer says Connection: close on a keep-alive request"));
    }
    Ok(())
}

pub fn http_keep_alive(p: &Probe) -> Outcome {
    let mut conn = Conn::open(p, p.http()?)?;
    for (i, (bytes, status, body)) in sequence(p)?.into_iter().enumerate() {
        let what = format!("request {} on one connection", i + 1);
        conn.send(&bytes).map_err(|e| format!("{what}: {e}"))?;
        let r = conn.response(false).map_err(|e| format!("{what}: {e}"))?;
        r.expect(&what, status, body)?;
        expect_open(&r, &what)?;
    }
    Ok(())
}

pub fn http_pipelining(p: &Probe) -> Outcome {
    let mut conn = Conn::open(p, p.http()?)?;
    let sequence = sequence(p)?;
    conn.send(&sequence.iter().flat_map(|(b, _, _)| b.clone()).collect::<Vec<u8>>())?;
    for (i, (_, status, body)) in sequence.iter().enumerate() {
        let what = format!("pipelined answer {} of {}", i + 1, sequence.len());
        let r = conn.response(false).map_err(|e| format!("{what}: {e}"))?;
        r.expect(&what, *status, body)?;
        expect_open(&r, &what)?;
    }
    // Still open afterwards.
    conn.send(&sequence[0].0)?;
    conn.response(false)?.expect("a request after the pipelined ones", 200, b"first")
}

pub fn http_connection_close(p: &Probe) -> Outcome {
    let t = p.http()?;
    let bytes = request(t, "POST", "/echo", &format!("{UTF8}Connection: close\r\n"), b"bye");
    let (r, mut conn) = exchange(p, t, &bytes)?;
    r.expect("Connection: close", 200, b"bye")?;
    conn.expect_end("after the answer to Connection: close")
}

pub fn http_10_close(p: &Probe) -> Outcome {
    let t = p.http()?;
    let bytes =
        format!("POST {} HTTP/1.0\r\nHost: {}\r\n{UTF8}Content-Length: 3\r\n\r\nold", target(t, "/echo"), t.authority);
    let (r, mut conn) = exchange(p, t, bytes.as_bytes())?;
    r.expect("HTTP/1.0", 200, b"old")?;
    conn.expect_end("after the answer to HTTP/1.0")
}

pub fn http_status(p: &Probe) -> Outcome {
    for status in [418u16, 201, 404, 599] {
        let r = call(p, "GET", &format!("/status/{status}"), "", b"")?;
        r.expect(&format!("/status/{status}"), status, b"")?;
    }
    Ok(())
}

pub fn http_status_500(p: &Probe) -> Outcome {
    for status in ["700", "99", "-1", "1000"] {
        let r = call(p, "GET", &format!("/status/{status}"), "", b"")?;
        if r.head.status != 500 {
            return Err(format!("/status/{status}: got {:?}, want 500", r.head.first_line()));
        }
    }
    Ok(())
}

pub fn http_header_readback(p: &Probe) -> Outcome {
    let headers = "X-Probe-Header: probe value, 1\r\nX-PROBE-CASE: Mixed Case\r\nUser-Agent: lsl-probe/1\r\n";
    get_expect(p, "/header/x-probe-header", headers, "probe value, 1")?;
    get_expect(p, "/header/x-probe-case", headers, "Mixed Case")?;
    get_expect(p, "/header/user-agent", headers, "lsl-probe/1")?;
    get_expect(p, "/header/x-probe-absent", headers, "")
}

pub fn http_header_255(p: &Probe) -> Outcome {
    let value: String = (0..300).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    get_expect(p, "/header/x-long", &format!("X-Long: {value}\r\n"), &value[..255])?;
    get_expect(p, "/header/x-long", &format!("X-Long: {}\r\n", &value[..255]), &value[..255])?;
    let query = format!("q={}", &value[..298]);
    get_expect(p, &format!("/header/x-query-string?{query}"), "", &query[..255])
}

pub fn http_path_info(p: &Probe) -> Outcome {
    let t = p.http()?;
    get_expect(p, "/header/x-path-info", "", "/header/x-path-info")?;
    get_expect(p, "/header/x-path-info?a=1", "", "/header/x-path-info")?;
    get_expect(p, "/header/x-query-string?a=1&b=two", "", "a=1&b=two")?;
    get_expect(p, "/header/x-query-string", "", "")?;
    let script_url = t.url.split('?').next().unwrap_or("").trim_end_matches('/');
    get_expect(p, "/header/x-script-url", "", script_url)?;
    // x-remote-ip: the address this end connects from.
    let bytes = request(t, "GET", "/header/x-remote-ip", "", b"");
    let (r, conn) = exchange(p, t, &bytes).map_err(|e| format!("GET /header/x-remote-ip: {e}"))?;
    let ip = conn.stream.local_ip().map(|ip| ip.to_string()).unwrap_or_default();
    r.expect("/header/x-remote-ip", 200, ip.as_bytes())
}

pub fn http_method(p: &Probe) -> Outcome {
    for method in ["GET", "POST", "PUT", "DELETE"] {
        call(p, method, "/method", "", b"")?.expect(&format!("{method} /method"), 200, method.as_bytes())?;
    }
    Ok(())
}

pub fn http_hold_504(p: &Probe) -> Outcome {
    let t = p.http()?;
    let Some(limit) = p.http_timeout else { return Err("no --http-timeout".into()) };
    let mut conn = Conn::open_with(p, t, limit + p.timeout)?;
    let start = Instant::now();
    conn.send(&request(t, "GET", "/hold", "", b""))?;
    let r = conn.response(false).map_err(|e| format!("an unanswered request after {limit:?}: {e}"))?;
    if r.head.status != 504 {
        return Err(format!("an unanswered request: got {:?}, want 504", r.head.first_line()));
    }
    let took = start.elapsed();
    if took + Duration::from_millis(500) < limit {
        return Err(format!("504 after {took:?}, before the timeout of {limit:?}"));
    }
    Ok(())
}
