//! The secret keys that sign session tokens and form tokens, in `state_dir/session-keys.json`
//! (mode 0600, generated on first start). Rotation adds a new key in front: the newest key
//! signs, the older ones still verify until the tokens they signed have expired, then they are
//! dropped.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use secrecy::{ExposeSecret, SecretSlice};

/// File name under `state_dir`.
pub(crate) const FILE: &str = "session-keys.json";

/// Where the key ring of a state directory lives.
pub(crate) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// One key.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Key {
    /// Key id, carried in each token's header.
    pub kid: String,
    /// 256 random bits, base64.
    secret: String,
    /// Unix seconds.
    pub created: u64,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("secret", &"***")
            .finish()
    }
}

impl Key {
    fn generate(now: u64) -> Result<Key, KeyError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| KeyError::Random(e.to_string()))?;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Key {
            kid: id.iter().map(|b| format!("{b:02x}")).collect(),
            secret: STANDARD.encode(b),
            created: now,
        })
    }

    /// The raw key bytes.
    pub(crate) fn bytes(&self) -> SecretSlice<u8> {
        STANDARD.decode(&self.secret).unwrap_or_default().into()
    }
}

/// The key ring: `keys[0]` signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRing {
    pub keys: Vec<Key>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the session keys {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the session keys file {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot write the session keys {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no randomness available: {0}")]
    Random(String),
}

impl KeyRing {
    /// Loads the ring from `state_dir`, creating it with one fresh key when absent.
    pub(crate) fn load_or_create(state_dir: &Path, now: u64) -> Result<KeyRing, KeyError> {
        let path = state_dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let ring: KeyRing =
                    serde_json::from_slice(&bytes).map_err(|e| KeyError::Damaged {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                if ring.keys.is_empty()
                    || ring
                        .keys
                        .iter()
                        .any(|k| k.bytes().expose_secret().len() < 32)
                {
                    return Err(KeyError::Damaged {
                        path,
                        reason: "no usable key".into(),
                    });
                }
                Ok(ring)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = KeyRing {
                    keys: vec![Key::generate(now)?],
                };
                ring.save(state_dir)?;
                Ok(ring)
            }
            Err(source) => Err(KeyError::Read { path, source }),
        }
    }

    /// Puts a new signing key in front and drops keys older than `keep_secs` (they can no
    /// longer have live tokens). Saves the ring.
    pub(crate) fn rotate(
        &mut self,
        state_dir: &Path,
        now: u64,
        keep_secs: u64,
    ) -> Result<(), KeyError> {
        self.keys.insert(0, Key::generate(now)?);
        let newest = self.keys[0].kid.clone();
        // A key stops signing when the next one is created: it may have signed tokens until
        // then, so it is kept for `keep_secs` after its successor's creation.
        let mut retired_at = now;
        let mut kept = Vec::new();
        for k in self.keys.drain(..) {
            if k.kid == newest || now.saturating_sub(retired_at) <= keep_secs {
                retired_at = k.created;
                kept.push(k);
            }
        }
        self.keys = kept;
        self.save(state_dir)
    }

    /// Replaces every key by a new one: once the gateway reloads the ring, no existing session
    /// verifies any more (everybody signs in again). For a suspected breach. Saves the ring.
    pub(crate) fn replace_all(&mut self, state_dir: &Path, now: u64) -> Result<(), KeyError> {
        self.keys = vec![Key::generate(now)?];
        self.save(state_dir)
    }

    fn save(&self, state_dir: &Path) -> Result<(), KeyError> {
        let path = state_dir.join(FILE);
        let err = |source| KeyError::Write {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| KeyError::Damaged {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        crate::files::replace(&path, &json, crate::files::Mode::Private).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_then_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::load_or_create(dir.path(), 1000).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let first = ring.keys[0].kid.clone();
        assert_eq!(
            KeyRing::load_or_create(dir.path(), 2000).unwrap().keys[0].kid,
            first
        );
        ring.rotate(dir.path(), 5000, 3600).unwrap();
        assert_eq!(ring.keys.len(), 2);
        assert_eq!(ring.keys[1].kid, first, "old key kept for verification");
        // Much later, a new rotation drops the first key (retired at 5000, 10 h ago).
        ring.rotate(dir.path(), 5000 + 36_000, 3600).unwrap();
        assert_eq!(ring.keys.len(), 2);
        assert!(ring.keys.iter().all(|k| k.kid != first));
        let reloaded = KeyRing::load_or_create(dir.path(), 0).unwrap();
        assert_eq!(reloaded.keys.len(), 2);
        std::fs::write(dir.path().join(FILE), b"{").unwrap();
        assert!(KeyRing::load_or_create(dir.path(), 0).is_err());
    }
}
