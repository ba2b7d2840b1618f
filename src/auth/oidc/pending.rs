//! The sign-ins in flight, between the browser leaving for the provider and coming back: kept
//! in memory under their `state`, taken out (so used once) by the callback, forgotten after ten
//! minutes, and bounded in number so that requests to `start` cannot fill the memory.
//! A gateway restart drops them: the doctor clicks the button again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::lang::Lang;

/// How long a doctor may take at the provider.
pub(crate) const TTL: u64 = 600;
/// The most sign-ins in flight at once.
const MAX: usize = 10_000;
/// The most sign-ins in flight from one client address: a new one pushes out that address's
/// oldest, so one client cannot crowd out the others.
const PER_CLIENT: usize = 20;

/// One sign-in in flight.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub(crate) provider: String,
    pub(crate) nonce: String,
    pub(crate) verifier: String,
    /// Where to go after signing in (already checked: same origin).
    pub(crate) next: String,
    pub(crate) lang: Lang,
    /// The browser's binding cookie when the flow started.
    pub(crate) binding: String,
    /// Unix seconds.
    pub(crate) created: u64,
    /// Who started it.
    pub(crate) client: std::net::IpAddr,
}

/// The flows, by `state`.
#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<HashMap<String, Flow>>);

impl Pending {
    /// Remembers a flow; `false` when too many are in flight even after forgetting the expired.
    pub(crate) fn insert(&self, state: String, flow: Flow) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut mine: Vec<(&String, u64)> = map
            .iter()
            .filter(|(_, f)| f.client == flow.client)
            .map(|(s, f)| (s, f.created))
            .collect();
        if mine.len() >= PER_CLIENT {
            mine.sort_by_key(|(_, created)| *created);
            let oldest: Vec<String> = mine[..=mine.len() - PER_CLIENT]
                .iter()
                .map(|(s, _)| (*s).clone())
                .collect();
            for s in oldest {
                map.remove(&s);
            }
        }
        if map.len() >= MAX {
            let now = flow.created;
            map.retain(|_, f| now.saturating_sub(f.created) < TTL);
        }
        if map.len() >= MAX {
            return false;
        }
        map.insert(state, flow);
        true
    }

    /// Takes the flow of `state` out: a second callback with the same `state` finds nothing.
    pub(crate) fn take(&self, state: &str) -> Option<Flow> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(created: u64) -> Flow {
        from([10, 0, 0, 1], created)
    }

    fn from(ip: [u8; 4], created: u64) -> Flow {
        Flow {
            client: std::net::IpAddr::from(ip),
            provider: "psc".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            next: "/".into(),
            lang: Lang::Fr,
            binding: "b".into(),
            created,
        }
    }

    #[test]
    fn a_state_is_used_once() {
        let p = Pending::default();
        assert!(p.insert("s".into(), flow(1)));
        assert!(p.take("s").is_some());
        assert!(p.take("s").is_none());
        assert!(p.take("other").is_none());
    }

    #[test]
    fn one_client_cannot_crowd_out_the_others() {
        let p = Pending::default();
        assert!(p.insert("other".into(), from([10, 0, 0, 2], 1)));
        for i in 0..100 {
            assert!(p.insert(format!("s{i}"), flow(1 + i)));
        }
        let kept: Vec<u64> = (0..100)
            .filter(|i| p.take(&format!("s{i}")).is_some())
            .collect();
        assert_eq!(kept, (80..100).collect::<Vec<u64>>(), "the newest are kept");
        assert!(p.take("other").is_some());
    }

    #[test]
    fn bounded_and_expired_flows_make_room() {
        let p = Pending::default();
        for i in 0..MAX {
            let ip = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            assert!(p.insert(format!("s{i}"), from(ip, 1)));
        }
        assert!(!p.insert("late".into(), flow(2)), "full");
        assert!(
            p.insert("later".into(), flow(1 + TTL)),
            "the old ones expired"
        );
        assert!(p.take("s0").is_none());
        assert!(p.take("later").is_some());
    }
}
