//! A cap on the connections one client address holds at once (`limits.max_connections_per_client`),
//! so that one machine cannot take every place under `limits.max_connections` by opening
//! connections and letting each run to its deadline (slow heads, stalled bodies, idle
//! keep-alives). IPv6 clients are counted per /64: one host usually holds a whole /64.
//!
//! Counting is lock-free: addresses are hashed (SipHash with this process's random keys, so that
//! nobody can aim at another client's counter) into a fixed table of counters. Two addresses
//! that share a counter share its cap, which only ever refuses more, never less.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

const BUCKETS: usize = 4096;

/// Connection counts per client address.
#[derive(Debug)]
pub(crate) struct PerClient {
    counts: Box<[AtomicU32]>,
    cap: u32,
    keys: std::collections::hash_map::RandomState,
}

/// One connection's place under its client's cap; given back when dropped.
#[derive(Debug)]
pub(crate) struct ClientSlot {
    table: Arc<PerClient>,
    bucket: usize,
}

impl PerClient {
    pub(crate) fn new(cap: usize) -> Arc<PerClient> {
        Arc::new(PerClient {
            counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            keys: Default::default(),
        })
    }

    fn bucket(&self, ip: IpAddr) -> usize {
        let mut h = self.keys.build_hasher();
        match ip.to_canonical() {
            IpAddr::V4(v4) => v4.octets().hash(&mut h),
            IpAddr::V6(v6) => v6.octets()[..8].hash(&mut h),
        }
        (h.finish() % BUCKETS as u64) as usize
    }

    /// A place for a new connection from `ip`, or `None` when that client holds its cap.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let bucket = self.bucket(ip);
        let admitted = self.counts[bucket]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .is_ok();
        admitted.then(|| ClientSlot {
            table: self.clone(),
            bucket,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.table.counts[self.bucket].fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_per_ipv6_64() {
        let t = PerClient::new(2);
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let (s1, s2) = (t.admit(a).unwrap(), t.admit(a).unwrap());
        assert!(t.admit(a).is_none());
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert!(t.admit("::ffff:203.0.113.7".parse().unwrap()).is_none());
        drop(s1);
        let s3 = t.admit(a).unwrap();
        let p1: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let p2: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let (_x, _y) = (t.admit(p1).unwrap(), t.admit(p2).unwrap());
        assert!(t.admit("2001:db8:1:2::3".parse().unwrap()).is_none());
        drop((s2, s3));
        assert_eq!(
            t.counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum::<u32>(),
            2
        );
    }
}
