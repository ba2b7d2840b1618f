//! The live certificate: a rustls resolver over an atomically swapped [`LoadedCert`] that is
//! reloaded when its files change or on SIGHUP. A new file that fails to load leaves the previous
//! certificate in place and is reported; open connections are never touched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{LoadedCert, TlsError, load};
use crate::files::FileStamp;

/// Result of a reload attempt.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Reloaded,
    Failed(TlsError),
}

/// Hands rustls the current certificate; see the module documentation.
pub struct CertStore {
    current: ArcSwap<LoadedCert>,
    cert_file: PathBuf,
    key_file: PathBuf,
    stamp: Mutex<FileStamp>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the pair once; failing here stops the start.
    pub fn open(cert_file: &Path, key_file: &Path) -> Result<CertStore, TlsError> {
        let stamp = FileStamp::of(&[cert_file, key_file]);
        let loaded = load(cert_file, key_file)?;
        Ok(CertStore {
            current: ArcSwap::from_pointee(loaded),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            stamp: Mutex::new(stamp),
        })
    }

    /// The certificate being served now.
    pub fn current(&self) -> Arc<LoadedCert> {
        self.current.load_full()
    }

    /// Reloads when either file changed since the last attempt (`force`: always).
    pub fn reload(&self, force: bool) -> Reload {
        let stamp = FileStamp::of(&[&self.cert_file, &self.key_file]);
        {
            let mut last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *last == stamp {
                return Reload::Unchanged;
            }
            // Remember the attempt even when it fails, so a broken file is reported once, and
            // retried when it changes again (e.g. the key written after the certificate).
            *last = stamp;
        }
        match load(&self.cert_file, &self.key_file) {
            Ok(loaded) => {
                self.current.store(Arc::new(loaded));
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}
