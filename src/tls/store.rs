//! The live certificate: a rustls resolver over an atomically swapped [`LoadedCert`] that is
//! reloaded when its files change or on SIGHUP. A new file that fails to load leaves the previous
//! certificate in place and is reported; open connections are never touched.
//!
//! When the gateway obtains its certificate itself (ACME, the practice CA), the store may start
//! empty: handshakes fail until the first certificate is written. With ACME's `tls-alpn-01`, a
//! client that offers only the `acme-tls/1` protocol (the CA checking) gets the challenge
//! certificate instead ([`super::acme::Challenges`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::acme::{ACME_TLS_ALPN, Challenges};
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
    current: ArcSwapOption<LoadedCert>,
    cert_file: PathBuf,
    key_file: PathBuf,
    stamp: Mutex<FileStamp>,
    /// The tls-alpn-01 answers, when ACME uses that challenge.
    alpn: Option<Arc<Challenges>>,
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
            current: ArcSwapOption::from_pointee(loaded),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            stamp: Mutex::new(stamp),
            alpn: None,
        })
    }

    /// A store for a certificate the gateway obtains itself: the pair is loaded when it is
    /// there and sound; otherwise the store starts empty and the error (if the files exist but
    /// cannot be used) is returned beside it, for the log.
    pub(crate) fn open_managed(
        cert_file: &Path,
        key_file: &Path,
        alpn: Option<Arc<Challenges>>,
    ) -> (CertStore, Option<TlsError>) {
        let stamp = FileStamp::of(&[cert_file, key_file]);
        let (loaded, error) = if cert_file.exists() || key_file.exists() {
            match load(cert_file, key_file) {
                Ok(l) => (Some(Arc::new(l)), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        let store = CertStore {
            current: ArcSwapOption::new(loaded),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            stamp: Mutex::new(stamp),
            alpn,
        };
        (store, error)
    }

    /// The certificate being served now (none before a managed source's first one).
    pub fn current(&self) -> Option<Arc<LoadedCert>> {
        self.current.load_full()
    }

    /// The certificate files.
    pub fn files(&self) -> (&Path, &Path) {
        (&self.cert_file, &self.key_file)
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
                self.current.store(Some(Arc::new(loaded)));
                Reload::Reloaded
            }
            Err(e) => Reload::Failed(e),
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN))
        {
            // The CA's check offers acme-tls/1 alone (RFC 8737 §3): then the challenge
            // certificate or nothing, never the served one; the connection is closed after the
            // handshake. A client mixing it with other protocols gets nothing either.
            let alone = hello.alpn().is_some_and(|offered| offered.count() == 1);
            return match (&self.alpn, alone) {
                (Some(challenges), true) => challenges.alpn(hello.server_name()?),
                _ => None,
            };
        }
        self.current.load().as_ref().map(|c| c.key.clone())
    }
}
