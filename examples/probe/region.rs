//! Region checks (SPEC §6).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Probe;
use crate::checks::Outcome;
use crate::frames::{Ws, ws_open, ws_roundtrip, ws_send};

pub fn region_ws(p: &Probe) -> Result<Ws, String> {
    ws_open(p, p.region()?)
}

pub fn region_echo(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    for payload in ["hello", "a,b,c", "", "two\nlines\r\nthree", "héllo ✓ 🦀", "msg,other,nested", ",,"] {
        let frame = format!("msg,{d},{payload}");
        ws_roundtrip(p, &mut ws, &frame, &frame)?;
    }
    let _ = ws.close(None);
    Ok(())
}

pub fn region_sub(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    ws_send(&mut ws, &format!("sub,{d}"))?;
    // Nothing answers a good `sub`: the next text is the echo.
    let after = format!("msg,{d},after sub");
    ws_roundtrip(p, &mut ws, &after, &after).map_err(|e| format!("after sub,{d}: {e}"))?;
    let _ = ws.close(None);
    Ok(())
}

pub fn region_uns(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    ws_send(&mut ws, &format!("sub,{d}"))?;
    ws_send(&mut ws, &format!("uns,{d}"))?;
    let after = format!("msg,{d},after uns");
    ws_roundtrip(p, &mut ws, &after, &after).map_err(|e| format!("after sub,{d} and uns,{d}: {e}"))?;
    let _ = ws.close(None);
    Ok(())
}

/// A domain nobody is likely to listen on.
pub fn unknown_domain(p: &Probe) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let d = format!("probe-nobody-{}-{nanos}", std::process::id());
    if d == p.domain { format!("{d}x") } else { d }
}

pub fn region_no_listener(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = unknown_domain(p);
    ws_roundtrip(p, &mut ws, &format!("msg,{d},x"), &format!("err,{d},no-listener"))?;
    let _ = ws.close(None);
    Ok(())
}

pub fn region_to_no_listener(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    let object = "0b5e1f3c-7d2a-4e6b-9c8d-1a2b3c4d5e6f";
    ws_roundtrip(p, &mut ws, &format!("to,{object},{d},x"), &format!("err,{d},no-listener"))?;
    let _ = ws.close(None);
    Ok(())
}

pub fn region_bad_frame(p: &Probe) -> Outcome {
    let mut ws = region_ws(p)?;
    let d = &p.domain;
    let long = "d".repeat(65);
    let frames = [
        "not an envelope".to_string(),
        "hello,world".to_string(),
        "sub,".to_string(),
        "msg,,x".to_string(),
        format!("to,not-a-key,{d},x"),
        format!("msg,{long},x"),
    ];
    for frame in &frames {
        ws_roundtrip(p, &mut ws, frame, "err,,bad-frame")?;
    }
    let after = format!("msg,{d},still open");
    ws_roundtrip(p, &mut ws, &after, &after).map_err(|e| format!("after the bad frames: {e}"))?;
    let _ = ws.close(None);
    Ok(())
}
