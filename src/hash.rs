//! The hash maps of the core: foldhash, fixed or keyed from the region's entropy.
//!
//! Most keys are capabilities and session keys the core minted from its
//! entropy, or ids the embedder chose: an attacker cannot pick them, so a
//! fixed seed is enough there and keeps the core free of hidden randomness
//! (std's `RandomState` reads the OS RNG). Keys that come from the network
//! (remote addresses in the rate limiter) get a [`keyed`] hasher whose seed is
//! drawn from the region's [`Entropy`], so nobody can precompute a flood of
//! colliding addresses, and a [`SeededEntropy`](crate::SeededEntropy) run is
//! still reproducible.

use std::collections::HashMap;

use foldhash::fast::FixedState;

use crate::entropy::Entropy;

/// A `HashMap` hashed with foldhash.
pub(crate) type Map<K, V> = HashMap<K, V, FixedState>;

/// An empty map whose hasher is keyed with 64 bits drawn from `entropy`.
pub(crate) fn keyed<K, V>(entropy: &mut dyn Entropy) -> Map<K, V> {
    let mut seed = [0; 8];
    entropy.fill(&mut seed);
    HashMap::with_hasher(FixedState::with_seed(u64::from_le_bytes(seed)))
}
