//! Request bodies to UTF-8 (SPEC §8): from the declared charset, ISO-8859-1
//! when none is given; bytes invalid in it become U+FFFD; the result is cut
//! to the limit on a character boundary.

/// The body as the script receives it: transcoded from `charset`, at most `limit` bytes.
#[cfg(test)]
pub(crate) fn to_script_text(raw: &[u8], charset: Option<&str>, limit: usize) -> String {
    let mut text = decode(raw, charset);
    cut(&mut text, limit);
    text
}

/// Raw bytes of a body in `charset` that can matter for `limit` bytes of
/// UTF-8; the rest is discarded unread. UTF-8 and ISO-8859-1 (the default)
/// yield at least one byte of UTF-8 per byte read, so the limit plus one
/// character split at the end (3 bytes) is enough; any other charset (UTF-16
/// is the widest) yields at least one per two bytes.
pub(crate) fn raw_bytes_for(limit: usize, charset: Option<&str>) -> usize {
    let label = charset.map(str::trim).unwrap_or("iso-8859-1");
    let byte_per_byte = is_latin1(label)
        || ["utf-8", "utf8", "us-ascii", "ascii"].iter().any(|l| label.eq_ignore_ascii_case(l))
        || encoding_rs::Encoding::for_label(label.as_bytes()).is_none();
    if byte_per_byte { limit.saturating_add(3) } else { limit.saturating_mul(2).saturating_add(4) }
}

pub(crate) fn decode(raw: &[u8], charset: Option<&str>) -> String {
    let label = charset.map(str::trim).unwrap_or("iso-8859-1");
    if is_latin1(label) {
        // ISO-8859-1 proper: every byte is the code point of the same value.
        // (WHATWG maps this label to windows-1252; the SPEC names ISO-8859-1.)
        return raw.iter().map(|&b| char::from(b)).collect();
    }
    if label.eq_ignore_ascii_case("us-ascii") || label.eq_ignore_ascii_case("ascii") {
        return raw.iter().map(|&b| if b.is_ascii() { char::from(b) } else { '\u{FFFD}' }).collect();
    }
    match encoding_rs::Encoding::for_label(label.as_bytes()) {
        Some(encoding) => encoding.decode_without_bom_handling(raw).0.into_owned(),
        // An unknown charset cannot be decoded; UTF-8 is what the script expects.
        None => String::from_utf8_lossy(raw).into_owned(),
    }
}

fn is_latin1(label: &str) -> bool {
    ["iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1", "iso-ir-100", "cp819", "ibm819"]
        .iter()
        .any(|l| label.eq_ignore_ascii_case(l))
}

/// Cuts `text` to at most `limit` bytes, on a character boundary.
pub(crate) fn cut(text: &mut String, limit: usize) {
    if text.len() > limit {
        let mut end = limit;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// `s` cut to at most `limit` bytes on a character boundary.
pub(crate) fn cut_str(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets() {
        assert_eq!(to_script_text(b"caf\xe9", None, 100), "café");
        assert_eq!(to_script_text(b"caf\xe9", Some("ISO-8859-1"), 100), "café");
        assert_eq!(to_script_text(b"\x80", Some("latin1"), 100), "\u{80}");
        assert_eq!(to_script_text("café".as_bytes(), Some("utf-8"), 100), "café");
        assert_eq!(to_script_text(b"a\xffb", Some("UTF-8"), 100), "a\u{FFFD}b");
        assert_eq!(to_script_text(b"a\xe9", Some("us-ascii"), 100), "a\u{FFFD}");
        assert_eq!(to_script_text(b"\x80", Some("windows-1252"), 100), "€");
        assert_eq!(to_script_text(b"h\0i\0", Some("utf-16le"), 100), "hi");
        assert_eq!(to_script_text(b"\x82\xa0", Some("shift_jis"), 100), "あ");
    }

    #[test]
    fn held_bytes_per_charset() {
        assert_eq!(raw_bytes_for(2048, None), 2051);
        assert_eq!(raw_bytes_for(2048, Some("UTF-8")), 2051);
        assert_eq!(raw_bytes_for(2048, Some("utf-16le")), 4100);
        // A 4-byte character that starts just under the limit is read whole, not as U+FFFD.
        let mut raw = vec![b'a'; 2045];
        raw.extend_from_slice("😀".as_bytes());
        let kept = &raw[..raw_bytes_for(2048, Some("utf-8")).min(raw.len())];
        assert_eq!(to_script_text(kept, Some("utf-8"), 2048), "a".repeat(2045));
    }

    #[test]
    fn cut_on_a_character_boundary() {
        // é is two bytes in UTF-8: a 3-byte limit keeps "aé", a 2-byte limit only "a".
        assert_eq!(to_script_text(b"a\xe9b", None, 3), "aé");
        assert_eq!(to_script_text(b"a\xe9b", None, 2), "a");
        assert_eq!(cut_str("aé", 2), "a");
        assert_eq!(cut_str("aé", 9), "aé");
    }
}
