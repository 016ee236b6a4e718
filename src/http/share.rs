//! Per-address shares of what a listener can hold, so that no single client — one IPv4
//! address, or one IPv6 /64 (a host usually owns a whole /64) — can take a listener from
//! everyone else. A share is a count per address with a cap, and the last eighth of the
//! slots is kept for addresses that hold little (fewer than a quarter of that reserve
//! each): a provider's few connections or a kubelet's probes are still served while
//! others hold every slot they may.
//!
//! The same rule shares out a listener's connections, the bytes of request bodies held
//! in memory, and the probation slots of addresses over their failure budget; a share
//! counts units (a connection, a byte, a slot) and can grow.
//!
//! The decision is a pure function ([`admit`]); [`Shares`] applies it under a lock and
//! hands out guards that give the units back when dropped, however the request ends.
//!
//! A reserve alone can be filled by a handful of addresses (each may take a little of
//! it), so for connections the listener also makes room: when a new or small holder is
//! refused, the largest holder gives one connection up (see `server`); [`Shares::largest`]
//! names it and [`Shares::released`] wakes whoever waits for the slot.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};

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

/// The shares of one kind of thing (connections of one listener) across addresses.
#[derive(Debug)]
pub struct Shares {
    limits: ShareLimits,
    state: Mutex<State>,
    /// Woken whenever units are given back.
    released: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    total: usize,
    /// Only addresses holding something: its size is bounded by `limits.total`.
    held: HashMap<IpAddr, usize>,
}

/// Units held by one address; given back on drop.
#[derive(Debug)]
pub struct Share {
    shares: Arc<Shares>,
    key: IpAddr,
    held: usize,
}

impl Shares {
    pub fn new(limits: ShareLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::new(State::default()),
            released: tokio::sync::Notify::new(),
        })
    }

    pub fn limits(&self) -> ShareLimits {
        self.limits
    }

    /// What `client`'s address holds now.
    pub fn held_by(&self, client: IpAddr) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.held.get(&address_key(client)).copied().unwrap_or(0)
    }

    /// The address (key) holding the most, other than `except`'s, when it holds more than
    /// a small holder can reach: the one to give a unit up for a new address. Addresses
    /// holding little are never asked, so making room cannot turn on providers.
    pub fn largest(&self, except: IpAddr) -> Option<IpAddr> {
        let except = address_key(except);
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.held.iter())
            .filter(|(key, n)| **key != except && **n > self.limits.small_holder)
            .max_by_key(|(_, n)| **n)
            .map(|(key, _)| *key)
    }

    /// Completes when units are given back after it is enabled (pin and `enable` it
    /// before trying again, so a release in between is not missed).
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// One unit (a connection, a slot) for `client`, or why not.
    pub fn take(self: &Arc<Self>, client: IpAddr) -> Result<Share, Refused> {
        let mut share = Share {
            shares: self.clone(),
            key: address_key(client),
            held: 0,
        };
        share.grow(1)?;
        Ok(share)
    }

    /// `n` more units for the address of `key`.
    fn add(&self, key: IpAddr, n: usize) -> Result<(), Refused> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let held = state.held.get(&key).copied().unwrap_or(0);
        admit(self.limits, state.total, held, n)?;
        state.total += n;
        *state.held.entry(key).or_default() += n;
        Ok(())
    }

    /// Slots held by all addresses, and addresses holding any.
    #[cfg(test)]
    pub fn held(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (state.total, state.held.len())
    }
}

impl Share {
    /// Units held by this share.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Holds `n` more units, if the address's share and the total allow.
    pub fn grow(&mut self, n: usize) -> Result<(), Refused> {
        if n == 0 {
            return Ok(());
        }
        self.shares.add(self.key, n)?;
        self.held += n;
        Ok(())
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if self.held == 0 {
            return;
        }
        let mut state = (self.shares.state.lock()).unwrap_or_else(PoisonError::into_inner);
        state.total = state.total.saturating_sub(self.held);
        if let Some(n) = state.held.get_mut(&self.key) {
            *n = n.saturating_sub(self.held);
            if *n == 0 {
                state.held.remove(&self.key);
            }
        }
        drop(state);
        self.shares.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn one_address_cannot_take_a_new_address_s_slot_and_slots_come_back() {
        let shares = Shares::new(ShareLimits::new(64, 32));
        let attacker = ip("10.0.0.1");
        let held: Vec<_> = (0..40).filter_map(|_| shares.take(attacker).ok()).collect();
        assert_eq!(held.len(), 32);
        // A /64 of attackers is one address: it gets up to the reserve, not into it.
        let v6: Vec<_> = (0..40)
            .filter_map(|i| shares.take(ip(&format!("2001:db8::{i:x}"))).ok())
            .collect();
        assert_eq!(v6.len(), 24, "up to the reserve");
        let probe = shares
            .take(ip("10.0.0.9"))
            .expect("a new address gets the reserve");
        // The one to make room: the largest holder, never the asker nor a small holder.
        assert_eq!(shares.largest(ip("10.0.0.9")), Some(ip("10.0.0.1")));
        assert_eq!(shares.largest(ip("10.0.0.1")), Some(ip("2001:db8::")));
        drop(probe);
        drop(held);
        drop(v6);
        assert_eq!(shares.held(), (0, 0));
    }

    #[test]
    fn a_share_grows_within_its_address_s_part_and_gives_everything_back() {
        let bytes = Shares::new(ShareLimits::new(1000, 300));
        let mut first = bytes.take(ip("10.0.0.1")).unwrap();
        first.grow(299).unwrap();
        assert_eq!(first.held(), 300);
        let mut second = bytes.take(ip("10.0.0.2")).unwrap();
        assert_eq!(
            bytes.take(ip("10.0.0.1")).unwrap_err(),
            Refused::AddressFull
        );
        assert_eq!(second.grow(400).unwrap_err(), Refused::AddressFull);
        second.grow(200).unwrap();
        drop(first);
        drop(second);
        assert_eq!(bytes.held(), (0, 0));
    }
}
