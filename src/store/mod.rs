//! State that must survive a restart: the sessions that exist (a session id not in the store is
//! not a session, so a logout or revocation holds across restarts), sign-in failure counters and
//! lockouts, and the last TOTP step each user consumed (replay guard).
//!
//! Embedded on local disk under `state_dir` (redb, one file, crash-safe transactions). Sessions
//! are also kept in memory behind an atomically swapped map, so the per-request check takes no
//! lock; every change is written to disk before it takes effect. Each session also carries, in
//! memory only, its latest activity time ([`LastActivity`]), which connections that outlive a
//! request (WebSocket tunnels) read for the idle timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("failures");
const TOTP_STEPS: TableDefinition<&str, u64> = TableDefinition::new("totp_steps");

/// Why the state store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the state file {path} with mode 0600: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the state database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("state database error: {0}")]
    Db(#[source] Box<redb::Error>),
    #[error("a state record cannot be encoded: {0}")]
    Encode(#[source] serde_json::Error),
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(Box::new(e.into()))
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds: the absolute end of the session.
    pub expires: u64,
    /// The latest activity time this process admitted or granted for the session (memory
    /// only: after a restart the cookie's own time is all there is).
    #[serde(skip)]
    pub activity: LastActivity,
    /// For a session opened through an OpenID provider: what stands in for a local account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalSession>,
}

/// A session opened through an OpenID Connect provider. Its user has no local account: the
/// roles were mapped from the provider's claims at sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExternalSession {
    /// `auth.oidc[].name`.
    pub provider: String,
    pub roles: Vec<String>,
    /// A digest of the provider's identity rules when the session opened: when the
    /// configuration changes them, the session ends.
    pub rules: String,
    /// The ID token, sent back as `id_token_hint` when the user signs out.
    pub id_token: Option<String>,
}

/// Unix seconds, only ever moved forward; shared by every connection of a session.
#[derive(Debug, Default)]
pub struct LastActivity(AtomicU64);

impl LastActivity {
    pub fn new(at: u64) -> LastActivity {
        LastActivity(AtomicU64::new(at))
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Moves the time forward to `at` (an older time changes nothing). A plain load first:
    /// most requests carry a time already recorded, and a load does not contend.
    pub fn advance(&self, at: u64) {
        if self.get() < at {
            self.0.fetch_max(at, Ordering::Relaxed);
        }
    }
}

impl Clone for LastActivity {
    fn clone(&self) -> LastActivity {
        LastActivity::new(self.get())
    }
}

impl PartialEq for LastActivity {
    fn eq(&self, other: &LastActivity) -> bool {
        self.get() == other.get()
    }
}

impl Eq for LastActivity {}

/// Sign-in failures for one account or one client address.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failures {
    pub count: u32,
    /// Unix seconds of the last failure.
    pub last: u64,
    /// Unix seconds until which sign-in is refused (0: not locked).
    pub locked_until: u64,
}

/// The store; see the module documentation.
pub struct Store {
    db: Database,
    sessions: ArcSwap<HashMap<String, Arc<SessionRecord>>>,
    /// Serialises writers so the in-memory map and the disk never disagree.
    write: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("sessions", &self.sessions.load().len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) `dir/state.redb`, creating `dir` with mode 0700. Expired sessions are
    /// dropped on the way.
    pub fn open(dir: &Path, now: u64) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        let path = dir.join("state.redb");
        private_file(&path).map_err(|source| StoreError::File {
            path: path.clone(),
            source,
        })?;
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        })?;
        let store = Store {
            db,
            sessions: ArcSwap::from_pointee(HashMap::new()),
            write: Mutex::new(()),
        };
        store.init(now)?;
        Ok(store)
    }

    fn init(&self, now: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let mut live = HashMap::new();
        {
            txn.open_table(FAILURES).map_err(db_err)?;
            txn.open_table(TOTP_STEPS).map_err(db_err)?;
            let mut table = txn.open_table(SESSIONS).map_err(db_err)?;
            table
                .retain(
                    |sid, bytes| match serde_json::from_slice::<SessionRecord>(bytes) {
                        Ok(rec) if rec.expires > now => {
                            live.insert(sid.to_owned(), Arc::new(rec));
                            true
                        }
                        _ => false,
                    },
                )
                .map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        self.sessions.store(Arc::new(live));
        Ok(())
    }

    /// The session with this id, if it exists and has not expired. Lock-free.
    pub fn session(&self, sid: &str, now: u64) -> Option<Arc<SessionRecord>> {
        self.sessions
            .load()
            .get(sid)
            .filter(|r| r.expires > now)
            .cloned()
    }

    /// Number of sessions in memory (expired ones included until the next cleanup).
    pub fn session_count(&self) -> usize {
        self.sessions.load().len()
    }

    /// Records a new session (on disk first).
    pub fn create_session(&self, sid: &str, rec: SessionRecord) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = serde_json::to_vec(&rec).map_err(StoreError::Encode)?;
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(SESSIONS).map_err(db_err)?;
            t.insert(sid, bytes.as_slice()).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)?;
        let mut map = HashMap::clone(&self.sessions.load());
        map.insert(sid.to_owned(), Arc::new(rec));
        self.sessions.store(Arc::new(map));
        Ok(())
    }

    /// Removes every session for which `keep` is false (logout, disabled users, expiry);
    /// returns how many were removed.
    pub fn retain_sessions(
        &self,
        mut keep: impl FnMut(&str, &SessionRecord) -> bool,
    ) -> Result<usize, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.sessions.load();
        let gone: Vec<String> = current
            .iter()
            .filter(|(sid, rec)| !keep(sid, rec))
            .map(|(sid, _)| sid.clone())
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(SESSIONS).map_err(db_err)?;
            for sid in &gone {
                t.remove(sid.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)?;
        let mut map = HashMap::clone(&current);
        for sid in &gone {
            map.remove(sid);
        }
        self.sessions.store(Arc::new(map));
        Ok(gone.len())
    }

    /// Revokes one session.
    pub fn revoke_session(&self, sid: &str) -> Result<bool, StoreError> {
        Ok(self.retain_sessions(|s, _| s != sid)? > 0)
    }

    /// The failure record for `key` (`user:NAME` or `ip:ADDR`).
    pub fn failures(&self, key: &str) -> Result<Failures, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let t = txn.open_table(FAILURES).map_err(db_err)?;
        Ok(match t.get(key).map_err(db_err)? {
            Some(v) => serde_json::from_slice(v.value()).unwrap_or_default(),
            None => Failures::default(),
        })
    }

    /// Adds a failure for `key`; at `max` failures the key is locked for `lock_secs`. A failure
    /// long after the previous one (more than `lock_secs`) starts a new count.
    pub fn record_failure(
        &self,
        key: &str,
        now: u64,
        max: u32,
        lock_secs: u64,
    ) -> Result<Failures, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(db_err)?;
        let rec = {
            let mut t = txn.open_table(FAILURES).map_err(db_err)?;
            let mut rec: Failures = match t.get(key).map_err(db_err)? {
                Some(v) => serde_json::from_slice(v.value()).unwrap_or_default(),
                None => Failures::default(),
            };
            if rec.locked_until != 0 && rec.locked_until <= now {
                // The lock has run out: start afresh.
                rec = Failures::default();
            } else if rec.count > 0 && now.saturating_sub(rec.last) > lock_secs {
                rec = Failures::default();
            }
            rec.count += 1;
            rec.last = now;
            if rec.count >= max {
                rec.locked_until = now + lock_secs;
            }
            let bytes = serde_json::to_vec(&rec).map_err(StoreError::Encode)?;
            t.insert(key, bytes.as_slice()).map_err(db_err)?;
            rec
        };
        txn.commit().map_err(db_err)?;
        Ok(rec)
    }

    /// Forgets the failures of `key` (after a successful sign-in).
    pub fn clear_failures(&self, key: &str) -> Result<(), StoreError> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = txn.open_table(FAILURES).map_err(db_err)?;
            t.remove(key).map_err(db_err)?;
        }
        txn.commit().map_err(db_err)
    }

    /// Records that `user` consumed TOTP step `step`; false (and nothing recorded) when that
    /// step or a later one was already used: a replayed code.
    pub fn consume_totp_step(&self, user: &str, step: u64) -> Result<bool, StoreError> {
        let _w = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.db.begin_write().map_err(db_err)?;
        let fresh = {
            let mut t = txn.open_table(TOTP_STEPS).map_err(db_err)?;
            let last = t.get(user).map_err(db_err)?.map(|v| v.value());
            let fresh = last.is_none_or(|l| step > l);
            if fresh {
                t.insert(user, step).map_err(db_err)?;
            }
            fresh
        };
        txn.commit().map_err(db_err)?;
        Ok(fresh)
    }
}

/// Creates `dir` (and parents) with mode 0700, and tightens it if it already exists.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    crate::files::create_private_dir(dir).map_err(|source| StoreError::Dir {
        path: dir.to_owned(),
        source,
    })
}

/// Creates `path` with mode 0600 when it does not exist, and tightens it when it does: sessions
/// and lockouts are nobody else's business on the machine.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    drop(opts.open(path)?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(user: &str, expires: u64) -> SessionRecord {
        SessionRecord {
            user: user.into(),
            created: 1,
            expires,
            activity: LastActivity::new(1),
            external: None,
        }
    }

    #[test]
    fn sessions_survive_reopen_and_revocation_sticks() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 100).unwrap();
            s.create_session("a", rec("alice", 1000)).unwrap();
            s.create_session("b", rec("bob", 1000)).unwrap();
            s.create_session("old", rec("bob", 150)).unwrap();
            assert!(s.session("a", 100).is_some());
            assert!(s.revoke_session("a").unwrap());
            assert!(s.session("a", 100).is_none());
        }
        let s = Store::open(dir.path(), 200).unwrap();
        assert!(s.session("a", 200).is_none(), "revocation lost on restart");
        assert_eq!(s.session("b", 200).unwrap().user, "bob");
        assert!(s.session("old", 200).is_none(), "expired session kept");
        assert_eq!(s.session_count(), 1);
        assert_eq!(s.retain_sessions(|_, r| r.user != "bob").unwrap(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            let file = dir.path().join("state.redb");
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            drop(s);
            let _s = Store::open(dir.path(), 200).unwrap();
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "a loose mode is tightened");
        }
    }

    #[test]
    fn failures_lock_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        for i in 1..5 {
            let f = s.record_failure("user:x", 1000 + i, 5, 900).unwrap();
            assert_eq!((f.count, f.locked_until), (i as u32, 0));
        }
        let f = s.record_failure("user:x", 1005, 5, 900).unwrap();
        assert_eq!(f.locked_until, 1905);
        assert_eq!(s.failures("user:x").unwrap().locked_until, 1905);
        // After the lock, a new failure starts a new count.
        let f = s.record_failure("user:x", 2000, 5, 900).unwrap();
        assert_eq!((f.count, f.locked_until), (1, 0));
        s.clear_failures("user:x").unwrap();
        assert_eq!(s.failures("user:x").unwrap(), Failures::default());
    }

    #[test]
    fn totp_steps_are_single_use() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), 0).unwrap();
        assert!(s.consume_totp_step("u", 10).unwrap());
        assert!(!s.consume_totp_step("u", 10).unwrap());
        assert!(!s.consume_totp_step("u", 9).unwrap());
        assert!(s.consume_totp_step("u", 11).unwrap());
        assert!(s.consume_totp_step("v", 10).unwrap());
    }
}
