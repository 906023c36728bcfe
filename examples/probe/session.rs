//! Frame checks (SPEC §5, second table).

use std::sync::PoisonError;

use crate::Probe;
use crate::checks::Outcome;
use crate::frames::*;
use crate::net::shown;

pub fn text_echo(p: &Probe) -> Outcome {
    let mut ws = ws_open(p, &p.object)?;
    for text in ["hello", "héllo ✓ 🦀", "", "a,b,c", "two\nlines\r\n", "msg,echo,x"] {
        ws_roundtrip(p, &mut ws, text, text)?;
    }
    let _ = ws.close(None);
    Ok(())
}

pub fn path_info_echo(p: &Probe) -> Outcome {
    let base = p.object.path.as_str();
    let (path, query) = match base.find('?') {
        Some(q) => base.split_at(q),
        None => (base, ""),
    };
    let sep = if path.ends_with('/') { "" } else { "/" };
    let query = if query.is_empty() { "?probe=1,2".to_string() } else { format!("{query}&probe=1") };
    let t = p.object.with_path(format!("{path}{sep}probe/path{query}"));
    let mut raw = Raw::open(p, &t).map_err(|e| format!("{}: {e}", t.path))?;
    raw.send(&masked(true, OP_TEXT, b"with path info"))?;
    let got = raw.text()?;
    if got != "with path info" {
        return Err(format!("sent \"with path info\", got {}", shown(got.as_bytes())));
    }
    Ok(())
}

pub fn fragmented_text(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(false, OP_TEXT, b"hel"))?;
    raw.send(&masked(true, OP_PING, b"between"))?;
    raw.send(&masked(false, OP_CONT, b"lo w\xc3"))?; // "ö" split across fragments
    raw.send(&masked(true, OP_CONT, b"\xb6rld"))?;
    let (mut pong, mut text) = (false, None::<String>);
    let mut message: Option<Vec<u8>> = None;
    while !pong || text.is_none() {
        let f = raw.frame("the pong and the echo")?;
        match (f.opcode, &mut message) {
            (OP_PONG, _) if f.payload == b"between" && !pong => pong = true,
            (OP_TEXT, None) if text.is_none() => message = Some(f.payload.clone()),
            (OP_CONT, Some(m)) => m.extend_from_slice(&f.payload),
            _ => return Err(format!("expected a pong \"between\" and the text \"hello wörld\", got {f}")),
        }
        if f.fin && matches!(f.opcode, OP_TEXT | OP_CONT) {
            let bytes = message.take().unwrap_or_default();
            text = Some(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    match text.as_deref() {
        Some("hello wörld") => Ok(()),
        other => Err(format!("the echo is {other:?}, want \"hello wörld\"")),
    }
}

pub fn oversize_1009(p: &Probe) -> Outcome {
    let n = p.max_message;
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(true, OP_TEXT, &vec![b'a'; n]))?;
    let echo = raw.text().map_err(|e| format!("a message of exactly {n} bytes (the cap) must echo: {e}"))?;
    if echo.len() != n {
        return Err(format!("a message of {n} bytes echoed as {} bytes", echo.len()));
    }
    raw.send(&masked(true, OP_TEXT, &vec![b'a'; n + 1]))?;
    raw.expect_close(Some(1009), true).map(drop).map_err(|e| format!("{} bytes: {e}", n + 1))
}

pub fn oversize_header_1009(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    let announced = (p.max_message as u64 + 1).max(1 << 20);
    let mut header = vec![0x81];
    frame_length(&mut header, 0x80, announced);
    header.extend_from_slice(&[1, 2, 3, 4]);
    // Only the header: the server must refuse without waiting for the payload.
    raw.send(&header)?;
    raw.expect_close(Some(1009), true).map(drop).map_err(|e| format!("{announced} bytes announced: {e}"))
}

pub fn oversize_fragments_1009(p: &Probe) -> Outcome {
    let n = p.max_message;
    let (a, b) = (n - n / 2, n / 2 + 1);
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(false, OP_TEXT, &vec![b'a'; a]))?;
    raw.send(&masked(true, OP_CONT, &vec![b'a'; b]))?;
    raw.expect_close(Some(1009), true).map(drop).map_err(|e| format!("fragments of {a} + {b} bytes: {e}"))
}

/// Sends `bytes` on a new session and expects a close with `code`.
pub fn expect_violation(p: &Probe, what: &str, bytes: &[u8], code: u16) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(bytes).map_err(|e| format!("{what}: {e}"))?;
    raw.expect_close(Some(code), true).map(drop).map_err(|e| format!("{what}: {e}"))
}

pub fn binary_1003(p: &Probe) -> Outcome {
    expect_violation(p, "binary message", &masked(true, OP_BINARY, b"\x00\x01"), 1003)
}

pub fn invalid_utf8_1007(p: &Probe) -> Outcome {
    expect_violation(p, "text \\xff", &masked(true, OP_TEXT, b"\xff"), 1007)?;
    expect_violation(p, "text ending inside a character", &masked(true, OP_TEXT, b"ab\xe2"), 1007)
}

pub fn invalid_utf8_split_1007(p: &Probe) -> Outcome {
    let bytes = [masked(false, OP_TEXT, b"ok \xe2\x82"), masked(true, OP_CONT, b"A")].concat();
    expect_violation(p, "a character broken across fragments", &bytes, 1007)
}

pub fn unmasked_1002(p: &Probe) -> Outcome {
    expect_violation(p, "unmasked text", &frame(true, 0, OP_TEXT, b"hi", None), 1002)
}

pub fn rsv_bit_1002(p: &Probe) -> Outcome {
    for (rsv, name) in [(4, "RSV1"), (2, "RSV2"), (1, "RSV3")] {
        expect_violation(p, name, &frame(true, rsv, OP_TEXT, b"hi", Some([1, 2, 3, 4])), 1002)?;
    }
    Ok(())
}

pub fn reserved_opcode_1002(p: &Probe) -> Outcome {
    expect_violation(p, "opcode 0x3", &masked(true, 0x3, b""), 1002)?;
    expect_violation(p, "opcode 0xB", &masked(true, 0xB, b""), 1002)
}

pub fn control_over_125_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a 126-byte ping", &masked(true, OP_PING, &[b'p'; 126]), 1002)
}

pub fn fragmented_control_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a ping without FIN", &masked(false, OP_PING, b"p"), 1002)
}

pub fn continuation_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a lone continuation", &masked(true, OP_CONT, b"x"), 1002)
}

pub fn message_inside_fragmented_1002(p: &Probe) -> Outcome {
    let bytes = [masked(false, OP_TEXT, b"a"), masked(true, OP_TEXT, b"b")].concat();
    expect_violation(p, "text inside a fragmented text", &bytes, 1002)
}

pub fn invalid_close_code_1002(p: &Probe) -> Outcome {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        let bytes = masked(true, OP_CLOSE, &close_payload(code, ""));
        expect_violation(p, &format!("close code {code}"), &bytes, 1002)?;
    }
    Ok(())
}

pub fn close_1_byte_1002(p: &Probe) -> Outcome {
    expect_violation(p, "a 1-byte close payload", &masked(true, OP_CLOSE, &[3]), 1002)
}

pub fn ping_pong(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    let long = [b'z'; 125];
    for payload in [&b"abc"[..], b"", &long] {
        raw.send(&masked(true, OP_PING, payload))?;
        let f = raw.frame("a pong")?;
        if f.opcode != OP_PONG || f.payload != payload {
            return Err(format!("ping {} answered with {f}", shown(payload)));
        }
    }
    Ok(())
}

pub fn close_echo(p: &Probe) -> Outcome {
    for (code, reason) in [(1000, "bye"), (3000, ""), (4999, "custom ✓")] {
        let mut raw = Raw::open(p, &p.object)?;
        raw.send(&masked(true, OP_CLOSE, &close_payload(code, reason)))?;
        let got = raw.expect_close(Some(code), false).map_err(|e| format!("close {code} {reason:?}: {e}"))?;
        if got != reason {
            return Err(format!("close {code} {reason:?} echoed with reason {got:?}"));
        }
    }
    Ok(())
}

pub fn close_empty_echo(p: &Probe) -> Outcome {
    let mut raw = Raw::open(p, &p.object)?;
    raw.send(&masked(true, OP_CLOSE, b""))?;
    raw.expect_close(None, false).map(drop)
}

pub fn no_reserved_close_codes(p: &Probe) -> Outcome {
    let closes = p.closes.lock().unwrap_or_else(PoisonError::into_inner);
    match (closes.0, closes.1.as_slice()) {
        (0, _) => Err("the server sent no close frame to judge".into()),
        (_, []) => Ok(()),
        (n, bad) => Err(format!("{} of {n} close frames carried a reserved code: {}", bad.len(), bad.join("; "))),
    }
}
