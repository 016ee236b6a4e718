//! Per-address shares of what a listener can hold, so that no single client — one IPv4
//! address, or one IPv6 /64 (a host usually owns a whole /64) — can take a listener from
//! everyone else. A share is a count per address with a cap, and the last eighth of the
//! slots is kept for addresses that hold little (fewer than a quarter of that reserve
//! each): a provider's few connections or a kubelet's probes are still served while
//! others hold every slot they may.
//!
//! The same rule shares out a listener's connections, the bytes of request bodies held
//! in memory, and the probation slots of addresses over their failure budget; a share
//! counts units (a connection, a byte, a slot) and can grow. For bytes, "little" is at
//! least one body of the largest `max_body`, so a provider's big delivery from a fresh
//! address still fits the reserve.
//!
//! This file is the decision alone, a pure core (no locks, no runtime, no I/O; see
//! `scripts/check-layering`): [`admit`] says whether an address may take more, and
//! [`address_key`] which address a client is counted under. [`super::shares`] applies
//! it under a lock and hands out the guards.

use std::net::{IpAddr, Ipv6Addr};

/// The key a client is counted under: IPv4 as is (IPv4-mapped IPv6 too); IPv6 by its /64
/// network, since one host can pick any address in its /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// How a share is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLimits {
    /// Everything held, all addresses together.
    pub total: usize,
    /// Held by one address at most.
    pub per_address: usize,
    /// Of `total`, the last slots are given only to addresses that hold little …
    pub reserved: usize,
    /// … that is, fewer than this many.
    pub small_holder: usize,
}

impl ShareLimits {
    /// `total` with one address held to `per_address` (at most `total`), and an eighth of
    /// `total` kept for addresses holding less than a quarter of that eighth (at least 1).
    pub fn new(total: usize, per_address: usize) -> Self {
        let total = total.max(1);
        let reserved = total / 8;
        Self {
            total,
            per_address: per_address.clamp(1, total),
            reserved,
            small_holder: (reserved / 4).max(1),
        }
    }

    /// As [`ShareLimits::new`], for connections: a small holder holds at most 4 (fewer on
    /// small listeners), since a provider or a kubelet needs few connections at once and
    /// the reserve must not be shared out to a few addresses in large pieces.
    pub fn connections(total: usize, per_address: usize) -> Self {
        let limits = Self::new(total, per_address);
        Self {
            small_holder: (limits.reserved / 4).clamp(1, 4),
            ..limits
        }
    }

    /// As [`ShareLimits::new`], for body bytes where one body may be up to `largest_body`:
    /// an address holding no more than one such body still holds little, and the reserve
    /// holds at least one, so a fresh address's largest legitimate body (a provider's big
    /// delivery) is read under load instead of refused once a quarter of the reserve is
    /// reached. The per-address cap is unchanged.
    pub fn bytes(total: usize, per_address: usize, largest_body: usize) -> Self {
        let limits = Self::new(total, per_address);
        let one_body = largest_body.clamp(1, limits.per_address);
        let reserved = limits.reserved.max(one_body).min(limits.total);
        Self {
            reserved,
            small_holder: (reserved / 4).max(one_body),
            ..limits
        }
    }

    /// Whether an address holding `held` holds little (may take from the reserve).
    pub fn is_small(&self, held: usize) -> bool {
        held < self.small_holder
    }
}

/// Why a share was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is held.
    Full,
    /// This address holds its whole share.
    AddressFull,
    /// Only the reserve is left, and this address already holds more than a little.
    Reserved,
}

/// Whether an address holding `held` may take `n` more when `total` are held.
pub fn admit(limits: ShareLimits, total: usize, held: usize, n: usize) -> Result<(), Refused> {
    if total.saturating_add(n) > limits.total {
        return Err(Refused::Full);
    }
    if held.saturating_add(n) > limits.per_address {
        return Err(Refused::AddressFull);
    }
    if held + n > limits.small_holder && total + n > limits.total - limits.reserved {
        return Err(Refused::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who may take from the reserve (and be made room for): fewer than `small_holder`.
    #[test]
    fn an_address_holding_fewer_than_the_small_holder_limit_holds_little() {
        let limits = ShareLimits::connections(64, 16);
        assert_eq!((limits.reserved, limits.small_holder), (8, 2));
        assert!(limits.is_small(0) && limits.is_small(1));
        assert!(!limits.is_small(2) && !limits.is_small(16));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a = ip("2001:db8:1:2::1");
        let b = ip("2001:db8:1:2:ffff::9");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn the_policy_caps_an_address_and_keeps_the_reserve_for_new_ones() {
        let l = ShareLimits::new(64, 16);
        assert_eq!((l.reserved, l.small_holder), (8, 2));
        assert_eq!(admit(l, 0, 0, 1), Ok(()));
        assert_eq!(admit(l, 10, 15, 1), Ok(()));
        assert_eq!(admit(l, 10, 16, 1), Err(Refused::AddressFull));
        assert_eq!(admit(l, 56, 2, 1), Err(Refused::Reserved));
        assert_eq!(admit(l, 56, 1, 1), Ok(()));
        // The last unit outside the reserve goes to anyone, however much it holds.
        assert_eq!(admit(l, 55, 2, 1), Ok(()));
        assert_eq!(admit(l, 63, 0, 1), Ok(()));
        assert_eq!(admit(l, 64, 0, 1), Err(Refused::Full));
        // Several units at once: the same rule on what they would make.
        assert_eq!(admit(l, 0, 0, 16), Ok(()));
        assert_eq!(admit(l, 0, 0, 17), Err(Refused::AddressFull));
        assert_eq!(admit(l, 50, 0, 7), Err(Refused::Reserved));
        assert_eq!(admit(l, 50, 0, 2), Ok(()));
        // A per-address cap above the total is the total; tiny listeners keep no reserve.
        assert_eq!(ShareLimits::new(4, 16).per_address, 4);
        assert_eq!(ShareLimits::new(4, 16).reserved, 0);
        // For connections a small holder holds at most 4, however large the reserve.
        assert_eq!(ShareLimits::connections(4096, 1024).small_holder, 4);
        assert_eq!(ShareLimits::connections(64, 16).small_holder, 2);
    }

    #[test]
    fn a_fresh_address_gets_one_largest_body_from_the_reserve() {
        const MIB: usize = 1 << 20;
        // 256 MiB in all, 64 MiB per address, bodies up to 16 MiB: more than a quarter
        // of the 32 MiB reserve.
        let l = ShareLimits::bytes(256 * MIB, 64 * MIB, 16 * MIB);
        assert_eq!((l.reserved, l.small_holder), (32 * MIB, 16 * MIB));
        // Under load (all but the reserve held), a fresh address's 16 MiB body fits …
        assert_eq!(admit(l, 224 * MIB, 0, 16 * MIB), Ok(()));
        assert_eq!(admit(l, 224 * MIB, 4 * MIB, 12 * MIB), Ok(()));
        // … but not a second one beside it, nor anything past one body.
        assert_eq!(admit(l, 224 * MIB, 16 * MIB, 1), Err(Refused::Reserved));
        // The per-address cap and the total still hold.
        assert_eq!(admit(l, 0, 64 * MIB, 1), Err(Refused::AddressFull));
        assert_eq!(admit(l, 250 * MIB, 0, 16 * MIB), Err(Refused::Full));
        // A body larger than the reserve's eighth makes the reserve that large.
        let l = ShareLimits::bytes(64 * MIB, 32 * MIB, 16 * MIB);
        assert_eq!((l.reserved, l.small_holder), (16 * MIB, 16 * MIB));
        assert_eq!(admit(l, 48 * MIB, 0, 16 * MIB), Ok(()));
        assert_eq!(admit(l, 48 * MIB + 1, 0, 16 * MIB), Err(Refused::Full));
        // Small bodies leave the rule of `new` as it was.
        assert_eq!(
            ShareLimits::bytes(256 * MIB, 64 * MIB, MIB),
            ShareLimits::new(256 * MIB, 64 * MIB)
        );
    }
}
