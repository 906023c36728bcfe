//! LSL keys: UUIDs in lower-case hyphenated form.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// An LSL `key`: a UUID rendered in lower-case hyphenated form.
///
/// Scripts, objects, owners, requests and sessions are all identified by
/// keys. Keys minted by a [`Region`](crate::Region) come from the entropy
/// source it was given and are never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(Uuid);

/// LSL's `NULL_KEY`: all zeros.
pub const NULL_KEY: Key = Key(Uuid::nil());

impl Key {
    /// A key from its 16 bytes (big-endian, as in the UUID text form).
    pub const fn from_bytes(bytes: [u8; 16]) -> Key {
        Key(Uuid::from_bytes(bytes))
    }

    /// A version-4 key from 16 random bytes (the version and variant bits are set).
    pub fn from_random_bytes(bytes: [u8; 16]) -> Key {
        Key(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    /// The 16 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Whether this is [`NULL_KEY`].
    pub fn is_null(&self) -> bool {
        self.0.is_nil()
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({self})")
    }
}

/// The text was not a UUID in hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an LSL key (expected a hyphenated UUID)")]
pub struct ParseKeyError;

impl FromStr for Key {
    type Err = ParseKeyError;

    /// Parses the hyphenated form, in either case. LSL itself renders keys in
    /// lower case; upper case is accepted because clients type keys by hand.
    fn from_str(s: &str) -> Result<Key, ParseKeyError> {
        if s.len() != 36 {
            return Err(ParseKeyError);
        }
        Uuid::try_parse(s).map(Key).map_err(|_| ParseKeyError)
    }
}
