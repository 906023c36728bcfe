//! The handshake rate limit (SPEC §5: 429 over the limit), per remote address.

use core::net::IpAddr;
use std::time::{Duration, Instant};

use crate::entropy::Entropy;
use crate::hash::{self, Map};

/// Entries kept before expired windows are swept out.
const SWEEP_ABOVE: usize = 1024;

/// Fixed one-second windows per remote address. IPv6 counts per /64, the
/// block one subscriber is usually given, so one host cannot fill the table
/// by cycling addresses. The table's hasher is keyed from the region's
/// entropy: the addresses are the attacker's choice.
#[derive(Debug)]
pub(crate) struct RateLimit {
    windows: Map<IpAddr, (Instant, u32)>,
    per_second: u32,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32, entropy: &mut dyn Entropy) -> RateLimit {
        RateLimit { windows: hash::keyed(entropy), per_second }
    }

    /// Counts one handshake from `remote`; whether it is within the limit.
    pub(crate) fn allow(&mut self, now: Instant, remote: IpAddr) -> bool {
        let entry = self.windows.entry(bucket(remote)).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.per_second
    }

    /// Forgets windows that ended, once the table is large enough to matter.
    pub(crate) fn sweep(&mut self, now: Instant) {
        if self.windows.len() > SWEEP_ABOVE {
            self.windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
        }
    }
}

/// The key an address is counted under.
fn bucket(remote: IpAddr) -> IpAddr {
    match remote {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv6Addr;
    use std::hash::BuildHasher;

    use foldhash::fast::FixedState;

    use super::*;
    use crate::SeededEntropy;

    /// Low bits of the hash that pick a bucket in a table of up to 4,096 slots.
    const MASK: u64 = 0xfff;

    /// /64 prefixes that all land in one bucket under the unkeyed hasher:
    /// what an attacker can precompute against any fixed hash.
    fn colliding_prefixes(n: usize) -> Vec<IpAddr> {
        let unkeyed = FixedState::default();
        let target = unkeyed.hash_one(bucket(IpAddr::V6(Ipv6Addr::from(1u128 << 64)))) & MASK;
        (1u64..)
            .map(|p| IpAddr::V6(Ipv6Addr::from(u128::from(p) << 64)))
            .filter(|ip| unkeyed.hash_one(*ip) & MASK == target)
            .take(n)
            .collect()
    }

    #[test]
    fn chosen_colliding_addresses_spread_under_the_keyed_hasher() {
        let attack = colliding_prefixes(512);
        let limit = RateLimit::new(50, &mut SeededEntropy::new(11));
        let keyed = limit.windows.hasher().clone();
        let mut buckets: Vec<u64> = attack.iter().map(|ip| keyed.hash_one(*ip) & MASK).collect();
        buckets.sort_unstable();
        buckets.dedup();
        // 512 random draws from 4,096 buckets give about 482 distinct ones; all 512 share one unkeyed.
        assert!(buckets.len() > 400, "keyed hasher left them in {} buckets", buckets.len());
        // That the table still admits each of them within its own limit is
        // `tests/abuse.rs` `chosen_colliding_prefixes_each_get_their_own_limit`
        // (through the Region, with the time a test feeds in); the per-window
        // and per-/64 counting are `tests/spec_handshake.rs` `h429_*` and
        // `tests/abuse.rs` `ipv6_flood_*`.
    }
}
