//! Open connections per client and in all, so that one client (or one
//! attacker) can only use up its own share of the server.
//!
//! A client is an IPv4 address or an IPv6 /64: one host usually owns a
//! whole /64, and counting its addresses one by one would give it 2^64
//! shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Who a connection counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    /// The upper 64 bits of the address.
    V6(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.into()),
                None => ClientKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client has `max_per_client` connections open.
    ClientFull,
    /// The server has `max_total` connections open.
    ServerFull,
}

#[derive(Debug, Default)]
struct Counts {
    per_client: HashMap<ClientKey, usize>,
    total: usize,
}

/// The connection counts; cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    max_total: usize,
    max_per_client: usize,
    counts: Arc<Mutex<Counts>>,
}

impl Clients {
    pub fn new(max_total: usize, max_per_client: usize) -> Clients {
        Clients {
            max_total,
            max_per_client,
            counts: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Plain counters: a panic elsewhere cannot leave them inconsistent.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection from `ip`, or says why it may not open.
    /// The connection is counted until the returned slot is dropped.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refused> {
        let key = ClientKey::of(ip);
        let mut counts = self.lock();
        if counts.total >= self.max_total {
            return Err(Refused::ServerFull);
        }
        let open = counts.per_client.entry(key).or_default();
        if *open >= self.max_per_client {
            return Err(Refused::ClientFull);
        }
        *open += 1;
        counts.total += 1;
        Ok(Slot {
            clients: self.clone(),
            key,
        })
    }

    /// Connections open now, in all.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    fn release(&self, key: ClientKey) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(open) = counts.per_client.get_mut(&key) {
            *open -= 1;
            if *open == 0 {
                counts.per_client.remove(&key);
            }
        }
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    clients: Clients,
    key: ClientKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.clients.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_client_has_its_own_share() {
        let clients = Clients::new(100, 2);
        let a1 = clients.admit(ip("10.0.0.1")).unwrap();
        let _a2 = clients.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            clients.admit(ip("10.0.0.1")).unwrap_err(),
            Refused::ClientFull
        );
        // Another client is not affected.
        let _b = clients.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(clients.total(), 3);
        drop(a1);
        assert!(clients.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn the_server_has_a_total() {
        let clients = Clients::new(2, 10);
        let _a = clients.admit(ip("10.0.0.1")).unwrap();
        let b = clients.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(
            clients.admit(ip("10.0.0.3")).unwrap_err(),
            Refused::ServerFull
        );
        drop(b);
        assert!(clients.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let clients = Clients::new(100, 1);
        let _a = clients.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            clients.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refused::ClientFull
        );
        assert!(clients.admit(ip("2001:db8:1:3::1")).is_ok());
        // An IPv4-mapped address is that IPv4 client.
        let _v4 = clients.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            clients.admit(ip("::ffff:192.0.2.1")).unwrap_err(),
            Refused::ClientFull
        );
    }

    #[test]
    fn released_clients_are_forgotten() {
        let clients = Clients::new(100, 1);
        for i in 0..50 {
            drop(clients.admit(ip(&format!("10.0.1.{i}"))).unwrap());
        }
        assert_eq!(clients.total(), 0);
        assert!(clients.lock().per_client.is_empty());
    }
}
