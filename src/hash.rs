//! A fixed, fast hasher for the core's maps.
//!
//! Every map key is a capability or key the core minted from its entropy
//! source, an id the embedder chose, or a remote address bucketed by the core
//! (see `Region::rate_ok`), so an attacker cannot fill a table with colliding
//! entries. A fixed hasher also keeps the core free of hidden randomness
//! (std's `RandomState` reads the OS RNG), and SipHash cost ~40% of the echo path.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FoldHasher`].
pub(crate) type Map<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// Multiply-rotate folding of 8-byte words (the FxHash construction).
#[derive(Default, Clone, Copy)]
pub(crate) struct FoldHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FoldHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}
