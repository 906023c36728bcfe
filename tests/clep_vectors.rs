//! The shared CLEP vectors (`SPEC.md` §7), read at test time so the vector
//! files stay the single source of truth.

use lsl_websocket::clep::{self, DEBUG_CHANNEL, PUBLIC_CHANNEL};

const CHANNEL_TSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/clep_channel.tsv");
const BUMP_TSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors/clep_bump.tsv");

/// Data rows of a vector file: `#` comments and blank lines skipped, fields
/// split on tabs (a JSON string literal cannot hold a raw tab), each row
/// tagged with its 1-based line number for failure messages.
fn rows(path: &str) -> Vec<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(i, line)| (i + 1, line.split('\t').map(str::to_owned).collect()))
        .collect()
}

/// Decodes one JSON string literal (quotes included). Hand-written so the
/// tests need no JSON dependency; strict enough to catch a mangled vector.
fn json_string(literal: &str) -> Result<String, String> {
    let inner = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| format!("not a quoted string: {literal:?}"))?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {}
            '"' => return Err("unescaped quote".into()),
            c if (c as u32) < 0x20 => return Err(format!("raw control character {c:?}")),
            c => {
                out.push(c);
                continue;
            }
        }
        let escaped = match chars.next().ok_or("dangling backslash")? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = hex4(&mut chars)?;
                match unit {
                    0xd800..=0xdbff => {
                        // A high surrogate only means something with the low
                        // surrogate escape that must follow it.
                        if chars.next() != Some('\\') || chars.next() != Some('u') {
                            return Err("high surrogate without a low one".into());
                        }
                        let low = hex4(&mut chars)?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(format!("bad low surrogate {low:04x}"));
                        }
                        let cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                        char::from_u32(cp).ok_or("bad surrogate pair")?
                    }
                    0xdc00..=0xdfff => return Err("lone low surrogate".into()),
                    _ => char::from_u32(unit).ok_or("bad \\u escape")?,
                }
            }
            other => return Err(format!("unknown escape \\{other}")),
        };
        out.push(escaped);
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
    let digits: String = chars.take(4).collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad \\u escape digits {digits:?}"));
    }
    u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())
}

#[test]
fn json_decoder_handles_every_escape() {
    assert_eq!(json_string(r#""""#).unwrap(), "");
    assert_eq!(json_string(r#""a\"b\\c\/d\b\f\n\r\t""#).unwrap(), "a\"b\\c/d\u{8}\u{c}\n\r\t");
    assert_eq!(json_string(r#""\u00fc\u2713""#).unwrap(), "ü✓");
    assert_eq!(json_string(r#""\ud83d\ude00""#).unwrap(), "😀");
    assert_eq!(json_string(r#""\uD83D\uDE00""#).unwrap(), "😀");
    for bad in [
        r#"abc"#,
        r#""abc"#,
        r#""\""#,
        r#""\x""#,
        r#""\u12""#,
        r#""\ud83d""#,
        r#""\ud83dx""#,
        r#""\ude00""#,
        r#""\ud83d\u0041""#,
        "\"a\tb\"",
        r#""a"b""#,
    ] {
        assert!(json_string(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn channel_vectors() {
    let rows = rows(CHANNEL_TSV);
    assert!(!rows.is_empty(), "no rows in {CHANNEL_TSV}");
    for (line, fields) in &rows {
        let [domain, sha, expected] = fields.as_slice() else {
            panic!("line {line}: expected 3 fields, got {fields:?}");
        };
        let domain = json_string(domain).unwrap_or_else(|e| panic!("line {line}: {e}"));
        let expected: i32 = expected.parse().unwrap_or_else(|e| panic!("line {line}: channel {expected:?}: {e}"));

        assert_eq!(&clep::sha256_hex(&domain), sha, "line {line}: sha256 of {domain:?}");
        assert_eq!(clep::channel(&domain), expected, "line {line}: channel of {domain:?}");
        // The full pipeline must agree with the exposed cast-and-bump step.
        assert_eq!(clep::channel_from_hex8(&sha[sha.len() - 8..]), Some(expected), "line {line}");
        assert!(expected != PUBLIC_CHANNEL && expected != DEBUG_CHANNEL, "line {line}");
    }
}

#[test]
fn bump_vectors() {
    let rows = rows(BUMP_TSV);
    assert!(!rows.is_empty(), "no rows in {BUMP_TSV}");
    for (line, fields) in &rows {
        let [hex8, expected] = fields.as_slice() else {
            panic!("line {line}: expected 2 fields, got {fields:?}");
        };
        let expected: i32 = expected.parse().unwrap_or_else(|e| panic!("line {line}: channel {expected:?}: {e}"));
        assert_eq!(clep::channel_from_hex8(hex8), Some(expected), "line {line}: {hex8}");
        // LSL's cast is case-insensitive.
        assert_eq!(
            clep::channel_from_hex8(&hex8.to_ascii_uppercase()),
            Some(expected),
            "line {line}: {hex8} upper case"
        );
    }
}

#[test]
fn hex8_rejects_anything_but_eight_hex_digits() {
    for bad in ["", "0000000", "000000000", "+0000000", "-0000001", "0x000000", "0000000g", "ffff ffff", "ü000000"] {
        assert_eq!(clep::channel_from_hex8(bad), None, "{bad:?}");
    }
}
