//! WebSocket frames after the handshake (SPEC §5, second table).
//!
//! Headers are read into and written from tungstenite's frame types (by hand
//! from the byte slice, with the same answers as tungstenite's own parser and
//! writer, which tests check); this module
//! adds what a server for this API needs on top: the message cap checked from
//! the header before any payload is buffered, text-only messages, incremental
//! UTF-8 validation across fragments, and the close code for each violation.

use bytes::Bytes;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Longest frame header (2 + 8 length + 4 mask).
pub(crate) const MAX_HEADER: usize = 14;

/// A violation and the close code and reason the server answers it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// What one decoded frame amounts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A complete text message.
    Text(String),
    /// A ping; answer with a pong carrying the payload.
    Ping(Bytes),
    /// A pong, or a non-final fragment: nothing to report but activity.
    Nothing,
    /// A close frame: status code (if any) and reason.
    Close(Option<u16>, String),
}

/// A text message being assembled from fragments.
#[derive(Debug)]
struct Partial {
    buf: Vec<u8>,
    /// Prefix of `buf` known to be valid UTF-8.
    valid: usize,
}

/// Incremental decoder of client frames. Holds nothing while no fragmented
/// message is in progress.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    partial: Option<Box<Partial>>,
}

impl Decoder {
    /// Decodes the next frame at the start of `input`.
    ///
    /// Returns `Ok(None)` when `input` holds no complete frame yet; the caller
    /// keeps the bytes and offers them again with more. A frame whose header
    /// shows it would break the cap is refused before its payload arrives.
    pub(crate) fn decode(&mut self, input: &[u8], max_message: usize) -> Result<Option<(Decoded, usize)>, Violation> {
        let (header, len, head_len) = match parse_header(input) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(None),
            Err(()) => return Err(violation(1002, "reserved opcode")),
        };
        let Some(mask) = header.mask else {
            return Err(violation(1002, "unmasked frame"));
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(violation(1002, "reserved bit set"));
        }
        match header.opcode {
            OpCode::Control(_) if len > 125 => return Err(violation(1002, "control frame too long")),
            OpCode::Control(_) if !header.is_final => return Err(violation(1002, "fragmented control frame")),
            OpCode::Data(Data::Continue) if self.partial.is_none() => {
                return Err(violation(1002, "continuation without a start"));
            }
            OpCode::Data(Data::Text | Data::Binary) if self.partial.is_some() => {
                return Err(violation(1002, "new message inside a fragmented one"));
            }
            OpCode::Data(Data::Binary) => return Err(violation(1003, "text only")),
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_)) => {
                return Err(violation(1002, "reserved opcode"));
            }
            _ => {}
        }
        let so_far = self.partial.as_ref().map_or(0, |p| p.buf.len());
        if matches!(header.opcode, OpCode::Data(_)) && len > (max_message - so_far.min(max_message)) as u64 {
            return Err(violation(1009, "message too big"));
        }
        // Control payloads are at most 125 bytes and data at most the cap, but the cap is
        // `usize::MAX` while closing (data is skipped), so the end is computed with care: a
        // frame that cannot end within the address space never completes.
        let Some(consumed) = usize::try_from(len).ok().and_then(|len| head_len.checked_add(len)) else {
            return Ok(None);
        };
        let Some(payload) = input.get(head_len..consumed) else {
            return Ok(None);
        };
        let decoded = match header.opcode {
            OpCode::Control(Control::Ping) => Decoded::Ping(Bytes::from(unmasked(payload, mask))),
            OpCode::Control(Control::Pong) => Decoded::Nothing,
            OpCode::Control(_) => close_payload(&unmasked(payload, mask))?,
            _ => self.data(payload, mask, header.is_final)?,
        };
        Ok(Some((decoded, consumed)))
    }

    #[inline(always)]
    fn data(&mut self, payload: &[u8], mask: [u8; 4], is_final: bool) -> Result<Decoded, Violation> {
        if is_final && self.partial.is_none() {
            // The common case: one frame, one message, one allocation.
            return String::from_utf8(unmasked(payload, mask)).map(Decoded::Text).map_err(|_| invalid_utf8());
        }
        let partial = self.partial.get_or_insert_with(|| Box::new(Partial { buf: Vec::new(), valid: 0 }));
        let start = partial.buf.len();
        partial.buf.extend_from_slice(payload);
        apply_mask(&mut partial.buf[start..], mask);
        match std::str::from_utf8(&partial.buf[partial.valid..]) {
            Ok(_) => partial.valid = partial.buf.len(),
            // An incomplete sequence at the end may be finished by the next fragment.
            Err(e) if e.error_len().is_none() && !is_final => partial.valid += e.valid_up_to(),
            Err(_) => return Err(invalid_utf8()),
        }
        if !is_final {
            return Ok(Decoded::Nothing);
        }
        let buf = self.partial.take().map(|p| p.buf).unwrap_or_default();
        String::from_utf8(buf).map(Decoded::Text).map_err(|_| invalid_utf8())
    }
}

fn invalid_utf8() -> Violation {
    violation(1007, "invalid utf-8")
}

fn close_payload(payload: &[u8]) -> Result<Decoded, Violation> {
    match payload {
        [] => Ok(Decoded::Close(None, String::new())),
        [_] => Err(violation(1002, "close payload of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(violation(1002, "invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| invalid_utf8())?;
            Ok(Decoded::Close(Some(code), reason.to_string()))
        }
    }
}

fn unmasked(payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = payload.to_vec();
    apply_mask(&mut out, mask);
    out
}

/// The 4-byte mask repeated over 16 bytes.
fn wide_mask(mask: [u8; 4]) -> u128 {
    u128::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
        mask[0], mask[1], mask[2], mask[3],
    ])
}

/// XORs `buf` with the 4-byte mask, sixteen bytes at a time.
fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = wide_mask(mask);
    let mut chunks = buf.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let mut word = [0u8; 16];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u128::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// What `FrameHeader::parse` answers for the start of `input`, with the
/// payload length and the header's own length, read from the slice
/// directly rather than through `io::Read` on a `Cursor` (a measurable part
/// of every message). The same answers: `None` until the whole header is
/// there (both length bytes, extended length, mask), then `Err` for a
/// reserved opcode. `parse_matches_tungstenite` checks it against tungstenite.
fn parse_header(input: &[u8]) -> Result<Option<(FrameHeader, u64, usize)>, ()> {
    let [first, second, ..] = *input else { return Ok(None) };
    let (len, mut head_len) = match second & 0x7f {
        126 => match input.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match input.get(2..10) {
            Some(bytes) => {
                let mut word = [0; 8];
                word.copy_from_slice(bytes);
                (u64::from_be_bytes(word), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let mask = if second & 0x80 != 0 {
        let Some(&[a, b, c, d]) = input.get(head_len..head_len + 4) else { return Ok(None) };
        head_len += 4;
        Some([a, b, c, d])
    } else {
        None
    };
    let opcode = OpCode::from(first & 0x0f);
    if matches!(opcode, OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_))) {
        return Err(());
    }
    let header = FrameHeader {
        is_final: first & 0x80 != 0,
        rsv1: first & 0x40 != 0,
        rsv2: first & 0x20 != 0,
        rsv3: first & 0x10 != 0,
        opcode,
        mask,
    };
    Ok(Some((header, len, head_len)))
}

/// One unmasked server frame in a single exact-size allocation. The header
/// is written by hand (final bit, opcode, minimal length encoding, as
/// `FrameHeader::format` writes it), without `io::Write`.
fn encode(opcode: OpCode, payload: &[&[u8]]) -> Bytes {
    let len: usize = payload.iter().map(|p| p.len()).sum();
    let head_len = match len {
        0..=125 => 2,
        126..=0xffff => 4,
        _ => 10,
    };
    let mut out = Vec::with_capacity(head_len + len);
    out.push(0x80 | u8::from(opcode));
    match len {
        0..=125 => out.push(len as u8),
        126..=0xffff => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    for part in payload {
        out.extend_from_slice(part);
    }
    Bytes::from(out)
}

/// Smallest block a session's outgoing arena takes at a time.
const ARENA_BLOCK: usize = 1024;

/// One final text frame, written into the session's outgoing `arena` and
/// split off it: once the embedder dropped what it wrote, the next frame
/// reuses the same block, so a steady echo allocates nothing per message.
/// Frames of one session only ever share its own block, so a client that
/// does not read pins no other client's memory.
pub(crate) fn text_in(arena: &mut bytes::BytesMut, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let head: &[u8] = match len {
        0..=125 => &[0x81, len as u8],
        126..=0xffff => &[0x81, 126, (len >> 8) as u8, len as u8],
        // Longer than any message cap: not worth an arena.
        _ => return text(payload),
    };
    if arena.capacity() < head.len() + len {
        // Reclaims the block when every frame split off it was dropped.
        arena.reserve((head.len() + len).max(ARENA_BLOCK));
    }
    arena.extend_from_slice(head);
    arena.extend_from_slice(payload);
    arena.split().freeze()
}

/// One final text frame.
pub(crate) fn text(payload: &[u8]) -> Bytes {
    encode(OpCode::Data(Data::Text), &[payload])
}

/// One final text frame whose payload is the concatenation of `parts`.
pub(crate) fn text_parts(parts: &[&[u8]]) -> Bytes {
    encode(OpCode::Data(Data::Text), parts)
}

/// A close frame with a code and reason (the reason is cut to 123 bytes on a char boundary).
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    encode(OpCode::Control(Control::Close), &[&code.to_be_bytes(), &reason.as_bytes()[..end]])
}

/// A close frame with no status (the echo of a client close that carried none).
pub(crate) fn close_empty() -> Bytes {
    Bytes::from_static(&[0x88, 0x00])
}

/// A pong carrying the ping's payload.
pub(crate) fn pong(payload: &[u8]) -> Bytes {
    encode(OpCode::Control(Control::Pong), &[payload])
}

/// The server's idle ping (empty payload).
pub(crate) fn ping() -> Bytes {
    Bytes::from_static(&[0x89, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn mask_roundtrip_all_lengths() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).collect();
            let mut buf = data.clone();
            apply_mask(&mut buf, [9, 8, 7, 6]);
            let expect: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ [9, 8, 7, 6][i % 4]).collect();
            assert_eq!(buf, expect);
        }
    }

    #[test]
    fn oversize_refused_from_header_alone() {
        let frame = masked(0x81, &[b'a'; 3000]);
        // Only the header has arrived.
        let err = Decoder::default().decode(&frame[..8], 2048).unwrap_err();
        assert_eq!(err.code, 1009);
    }

    #[test]
    fn utf8_split_across_fragments() {
        let mut d = Decoder::default();
        let euro = "€".as_bytes();
        let a = masked(0x01, &euro[..1]);
        let b = masked(0x80, &euro[1..]);
        assert_eq!(d.decode(&a, 2048).unwrap().unwrap().0, Decoded::Nothing);
        assert_eq!(d.decode(&b, 2048).unwrap().unwrap().0, Decoded::Text("€".into()));
    }

    #[test]
    fn parse_matches_tungstenite() {
        // Every first byte, length form and mask bit, cut at every point.
        let mut cases = Vec::new();
        for first in 0..=255u8 {
            for (second, ext) in [(5u8, vec![]), (126, vec![1, 0]), (127, vec![0, 0, 0, 0, 0, 1, 0, 0])] {
                for masked in [false, true] {
                    let mut frame = vec![first, second | if masked { 0x80 } else { 0 }];
                    frame.extend_from_slice(&ext);
                    if masked {
                        frame.extend_from_slice(&[9, 8, 7, 6]);
                    }
                    frame.extend_from_slice(b"abc");
                    cases.push(frame);
                }
            }
        }
        for frame in cases {
            for cut in 0..=frame.len() {
                let input = &frame[..cut];
                let mut cursor = std::io::Cursor::new(input);
                let theirs = FrameHeader::parse(&mut cursor).map_err(|_| ());
                let ours = parse_header(input);
                match (theirs, ours) {
                    (Ok(Some((h1, l1))), Ok(Some((h2, l2, n)))) => {
                        assert_eq!((h1, l1, cursor.position() as usize), (h2, l2, n), "{input:?}");
                    }
                    (Ok(None), Ok(None)) | (Err(()), Err(())) => {}
                    (theirs, ours) => panic!("{input:?}: tungstenite {theirs:?}, ours {ours:?}"),
                }
            }
        }
    }

    #[test]
    fn arena_frames_match_and_reuse_their_block() {
        let mut arena = bytes::BytesMut::new();
        for len in [0, 1, 125, 126, 2048, 0x10000] {
            let payload = vec![b'x'; len];
            assert_eq!(text_in(&mut arena, &payload), text(&payload), "len {len}");
        }
        let mut arena = bytes::BytesMut::new();
        let first = text_in(&mut arena, b"hello").as_ptr();
        // Dropped by the embedder: the block is reclaimed, not reallocated.
        for _ in 0..1000 {
            let frame = text_in(&mut arena, &[b'y'; 64]);
            assert!(frame.as_ptr() >= first && frame.as_ptr() < first.wrapping_add(ARENA_BLOCK));
        }
        // Held: later frames go elsewhere and the held one is untouched.
        let held = text_in(&mut arena, b"keep");
        for _ in 0..100 {
            let _ = text_in(&mut arena, &[b'z'; 64]);
        }
        assert_eq!(&held[2..], b"keep");
    }

    #[test]
    fn encode_matches_tungstenite() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            let payload = vec![b'x'; len];
            for opcode in [OpCode::Data(Data::Text), OpCode::Control(Control::Pong), OpCode::Control(Control::Close)] {
                let header = FrameHeader { opcode, ..FrameHeader::default() };
                let mut theirs = Vec::new();
                header.format(len as u64, &mut theirs).unwrap();
                theirs.extend_from_slice(&payload);
                let ours = encode(opcode, &[&payload[..len / 2], &payload[len / 2..]]);
                assert_eq!(&ours[..], &theirs[..], "len {len}");
            }
        }
    }

    #[test]
    fn server_frames_parse() {
        let f = text(b"hi");
        assert_eq!(&f[..], &[0x81, 2, b'h', b'i']);
        let c = close(1001, "script reset");
        assert_eq!(&c[..4], &[0x88, 14, 0x03, 0xe9]);
    }
}
