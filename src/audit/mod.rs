//! The audit trail: an append-only record of who did what, that proves it was not altered.
//!
//! Records are JSON lines in daily files (`audit-YYYY-MM-DD.jsonl`, 0600, in a 0700 directory),
//! each naming the SHA-256 of the line before it, so one chain runs through every file; every so
//! often the writer appends a seal, an HMAC-SHA256 of the chain so far with a key kept outside the
//! audit directory (`audit-seal.key` in `state_dir`), and notes the last seal in an anchor file
//! beside the key. [`verify()`] walks the whole chain and names the first record that was altered,
//! is missing, out of order, or cut off.
//!
//! - `event.rs`: what is recorded.
//! - `chain.rs`: the line format, its hash, the seal's MAC.
//! - `log.rs`: the writer (daily files, fsync, seals, the anchor, resuming after a restart).
//! - `verify.rs`: `vigie audit verify`.
//! - `writer.rs`: the gateway's writer thread and the request path's non-blocking handle.
//! - `report/`: `vigie audit report`, `vigie audit patient`, `vigie breach report`.
//!
//! Not yet here (issue 10): accesses to patient data (and the viewer-URL parser they need),
//! session expiry, alerts, retention, `audit.dir` and syslog. Today the
//! command line records its account and key changes, and the gateway its sign-ins, lockouts,
//! sign-outs, the access policy's refusals and the sessions an account change revoked.

pub(crate) mod access;
mod chain;
mod event;
mod log;
pub(crate) mod report;
mod verify;
mod writer;

#[cfg(test)]
mod tests;

pub(crate) use event::{Event, Method, Operator};
#[cfg(test)]
pub(crate) use event::{Patient, Study};
pub(crate) use log::AuditLog;
pub(crate) use verify::{Broken, Verified, verify};
pub(crate) use writer::{AuditWriter, Auditor, Observer, WriterOptions};

use std::path::{Path, PathBuf};

/// Where the trail and its key live for a given state directory.
#[derive(Debug, Clone)]
pub(crate) struct AuditPaths {
    /// The records.
    pub(crate) dir: PathBuf,
    /// The sealing key: outside `dir`, so whoever can rewrite the records cannot re-seal them.
    pub(crate) key: PathBuf,
    /// The last seal written (sequence number and hash): a trail cut after it is noticed.
    pub(crate) anchor: PathBuf,
    /// Where the trail starts once old records were deleted: a trail cut before it is noticed.
    pub(crate) start: PathBuf,
}

impl AuditPaths {
    /// `state_dir/audit/`, with the key and anchor in `state_dir`.
    #[cfg(test)]
    pub(crate) fn under(state_dir: &Path) -> AuditPaths {
        AuditPaths::at(&state_dir.join("audit"), state_dir)
    }

    /// The records in `dir` (`audit.dir`), the key and anchor in `state_dir`.
    pub(crate) fn at(dir: &Path, state_dir: &Path) -> AuditPaths {
        AuditPaths {
            dir: dir.to_owned(),
            key: state_dir.join("audit-seal.key"),
            anchor: state_dir.join("audit-anchor.json"),
            start: state_dir.join("audit-start.json"),
        }
    }

    /// Where the configuration puts them.
    pub(crate) fn of(config: &crate::config::Config) -> AuditPaths {
        AuditPaths::at(&config.audit.dir, &config.state_dir)
    }
}

/// Appends one event and seals it at once: for the command line, which writes one record and
/// exits. Refuses to write after a break in the trail.
pub(crate) fn record_and_seal(paths: &AuditPaths, event: &Event) -> Result<u64, AuditError> {
    let mut log = AuditLog::open(paths)?;
    let now = time::OffsetDateTime::now_utc();
    let seq = log.append(now, event)?;
    log.seal(now)?;
    Ok(seq)
}

/// Why the trail cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    #[error("audit trail {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("audit sealing key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("audit trail: {0}")]
    Broken(Box<Broken>),
    #[error("audit record cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

impl AuditError {
    fn io(path: &Path, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
