//! The shares of one listener (its connections, its body bytes, its probation slots)
//! held across client addresses: [`Shares`] applies the pure rule of [`super::share`]
//! under a lock and hands out guards ([`Share`]) that give the units back when dropped,
//! however the request ends.
//!
//! A reserve alone can be filled by a handful of addresses (each may take a little of
//! it), so for connections the listener also makes room: when a new or small holder is
//! refused, the largest holder gives one connection up (see `server`); [`Shares::largest`]
//! names it and [`Shares::released`] wakes whoever waits for the slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use super::share::{address_key, admit, Refused, ShareLimits};

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
