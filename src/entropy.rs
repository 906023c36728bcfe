//! Entropy sources: where capabilities and keys come from.

/// A source of random bytes for capabilities and keys.
///
/// The core never draws randomness by itself. Production embedders pass an
/// OS CSPRNG (the adapters do); tests and conformance runs pass a
/// [`SeededEntropy`] so that the same inputs give the same URLs, keys and
/// output bytes.
pub trait Entropy: Send {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

/// A deterministic, seeded generator (SplitMix64) for tests and reproducible runs.
///
/// Not cryptographically secure: never use it for URLs exposed to the
/// internet, since its capabilities are predictable from the seed.
#[derive(Debug, Clone)]
pub struct SeededEntropy {
    state: u64,
}

impl SeededEntropy {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Entropy for SeededEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}
