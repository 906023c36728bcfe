//! The GSI CLEP channel hash (SPEC §7).
//!
//! CLEP scripts derive an LSL chat channel from a domain string:
//! `(integer)("0x" + llGetSubString(llSHA256String(domain), -8, -1))`, bumped
//! off [`PUBLIC_CHANNEL`] and [`DEBUG_CHANNEL`]. [`channel`] reproduces that
//! bit for bit, so a bridge can relay a region-scope domain onto in-world chat
//! on the channel CLEP scripts listen to, and the region routes by the same
//! number.
//!
//! ```
//! use lsl_websocket::clep;
//!
//! let ch = clep::channel("chat");
//! assert_ne!(ch, clep::PUBLIC_CHANNEL);
//! assert_ne!(ch, clep::DEBUG_CHANNEL);
//! assert_eq!(Some(ch), clep::channel_from_hex8(&clep::sha256_hex("chat")[56..]));
//! ```

use sha2::{Digest, Sha256};

/// LSL's `PUBLIC_CHANNEL` (0): open chat, never a CLEP channel.
pub const PUBLIC_CHANNEL: i32 = 0;

/// LSL's `DEBUG_CHANNEL` (2147483647): the script-error channel, never a
/// CLEP channel.
pub const DEBUG_CHANNEL: i32 = 2147483647;

/// The lower-case hex SHA-256 of `domain`'s UTF-8 bytes (64 characters), as
/// LSL's `llSHA256String` renders it.
///
/// ```
/// // The FIPS 180-2 example.
/// assert_eq!(
///     lsl_websocket::clep::sha256_hex("abc"),
///     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
/// );
/// ```
pub fn sha256_hex(domain: &str) -> String {
    hex::encode(Sha256::digest(domain.as_bytes()))
}

/// The CLEP chat channel of `domain`.
///
/// Defined for any string, not only for valid region-scope domains, because
/// CLEP itself puts no limit on domains. Never returns [`PUBLIC_CHANNEL`] or
/// [`DEBUG_CHANNEL`].
///
/// ```
/// use lsl_websocket::clep::channel;
///
/// // Case matters: the hash is over the exact bytes.
/// assert_ne!(channel("UPPER"), channel("upper"));
/// ```
pub fn channel(domain: &str) -> i32 {
    let digest = Sha256::digest(domain.as_bytes());
    // Going through the hex text keeps this the literal CLEP recipe; it is
    // the same number as the digest's last four bytes read big-endian.
    let hex = hex::encode(&digest[digest.len() - 4..]);
    channel_from_hex8(&hex).expect("hex::encode of 4 bytes is 8 hex digits")
}

/// The cast-and-bump step of [`channel`] on its own: 8 hex digits (either
/// case, no `0x`, no sign) read as LSL's `(integer)"0x…"` does — a 32-bit
/// two's-complement value — then moved off [`PUBLIC_CHANNEL`] and
/// [`DEBUG_CHANNEL`] by adding one with LSL's wrapping arithmetic.
///
/// `None` unless `last8` is exactly 8 ASCII hex digits.
///
/// ```
/// use lsl_websocket::clep::{channel_from_hex8, DEBUG_CHANNEL, PUBLIC_CHANNEL};
///
/// assert_eq!(channel_from_hex8("fffffffe"), Some(-2));
/// assert_eq!(channel_from_hex8("00000000"), Some(PUBLIC_CHANNEL + 1));
/// assert_eq!(channel_from_hex8("7FFFFFFF"), Some(DEBUG_CHANNEL.wrapping_add(1)));
/// assert_eq!(channel_from_hex8("+0000000"), None);
/// ```
pub fn channel_from_hex8(last8: &str) -> Option<i32> {
    // from_str_radix alone would accept a leading '+'.
    if last8.len() != 8 || !last8.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let value = u32::from_str_radix(last8, 16).ok()? as i32;
    Some(match value {
        PUBLIC_CHANNEL | DEBUG_CHANNEL => value.wrapping_add(1),
        other => other,
    })
}
