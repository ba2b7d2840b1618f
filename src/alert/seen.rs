//! The addresses each user signed in from, for the `new_address` rule: a small JSON file in
//! `state_dir` (`alert-addresses.json`, 0600, replaced atomically), at most [`PER_USER`]
//! networks per user (the most recent kept) and [`USERS`] users. An IPv6 address counts as
//! its /64.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::files::{Mode, replace};

/// Networks remembered per user.
const PER_USER: usize = 32;
/// Users remembered at most (beyond, a new user is not remembered: no alert for them).
const USERS: usize = 5000;
const FILE: &str = "alert-addresses.json";

/// Where each user signed in from.
#[derive(Debug)]
pub(crate) struct Seen {
    path: Option<PathBuf>,
    /// Per user, most recent last.
    users: BTreeMap<String, Vec<IpAddr>>,
}

impl Seen {
    /// Reads the file in `state_dir`; a missing file starts empty, an unreadable one too (with
    /// a warning: the next sign-ins rebuild it).
    pub(crate) fn open(state_dir: &Path) -> Seen {
        let path = state_dir.join(FILE);
        let users = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(file = %path.display(), error = %e, "unreadable; the addresses seen start afresh");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                warn!(file = %path.display(), error = %e, "unreadable; the addresses seen start afresh");
                BTreeMap::new()
            }
        };
        Seen {
            path: Some(path),
            users,
        }
    }

    /// Nothing on disk (tests).
    #[cfg(test)]
    pub(crate) fn memory() -> Seen {
        Seen {
            path: None,
            users: BTreeMap::new(),
        }
    }

    /// Notes that `user` signed in from `client`; true when the user has signed in before but
    /// never from this network (the first sign-in ever teaches, it does not alert).
    pub(crate) fn note(&mut self, user: &str, client: IpAddr) -> bool {
        let net = super::network_of(client);
        let known = self.users.contains_key(user);
        if !known && self.users.len() >= USERS {
            return false;
        }
        let nets = self.users.entry(user.to_owned()).or_default();
        let new = !nets.contains(&net);
        if !new && nets.last() == Some(&net) {
            return false;
        }
        nets.retain(|n| *n != net);
        nets.push(net);
        if nets.len() > PER_USER {
            nets.remove(0);
        }
        self.save();
        known && new
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let result = serde_json::to_vec(&self.users)
            .map_err(std::io::Error::other)
            .and_then(|bytes| replace(path, &bytes, Mode::Private));
        if let Err(e) = result {
            warn!(file = %path.display(), error = %e, "cannot save the addresses seen");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sign_in_teaches_a_new_network_alerts_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Seen::open(dir.path());
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let b: IpAddr = "198.51.100.9".parse().unwrap();
        assert!(!s.note("dr.martin", a));
        assert!(!s.note("dr.martin", a));
        assert!(s.note("dr.martin", b));
        assert!(!s.note("dr.martin", b));
        // Another address in the same IPv6 /64 is the same network.
        assert!(s.note("dr.martin", "2001:db8:1:2::10".parse().unwrap()));
        assert!(!s.note("dr.martin", "2001:db8:1:2:aaaa::1".parse().unwrap()));
        let path = dir.path().join(FILE);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // After a restart it remembers.
        let mut s = Seen::open(dir.path());
        assert!(!s.note("dr.martin", b));
        assert!(s.note("dr.martin", "203.0.113.1".parse().unwrap()));
    }

    #[test]
    fn bounded_per_user() {
        let mut s = Seen::memory();
        for i in 0..100u8 {
            s.note("u", IpAddr::from([10, 0, 0, i]));
        }
        assert_eq!(s.users["u"].len(), PER_USER);
        // The oldest were forgotten: seeing one again alerts.
        assert!(s.note("u", IpAddr::from([10, 0, 0, 0])));
    }
}
