//! The writer: appends records to the day's file, chains them, seals the chain, and keeps the
//! anchor (the last seal) outside the audit directory. One writer per trail; the gateway runs it
//! off the request path. A record is on disk once [`AuditLog::sync`] or a seal has run.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::warn;

use super::chain::{self, Anchor, GENESIS, Line};
use super::verify::{self, Verified};
use super::{AuditError, AuditPaths, Event};
use crate::files::{self, Mode};

/// The open trail.
pub(crate) struct AuditLog {
    paths: AuditPaths,
    key: SecretSlice<u8>,
    /// The day's file: its date (`YYYY-MM-DD`, UTC) and handle.
    current: Option<(String, File)>,
    next_seq: u64,
    prev: String,
    /// Records written since the last seal.
    unsealed: u64,
    /// Bytes written since the last fsync.
    unsynced: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.paths.dir)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the trail at `paths`, creating the directory and the sealing key the first time,
    /// and carries the chain on from its last record. A trail that does not verify is refused:
    /// the caller raises the alarm rather than write after a break.
    ///
    /// One repair is made first: a last line cut short by a crash or a power loss (the writer
    /// writes a line at once, so only the last one can be) is removed, and the removal is the
    /// first record written. Only unsealed lines can go that way unnoticed: a cut before the
    /// last seal still fails against the anchor.
    pub(crate) fn open(paths: &AuditPaths) -> Result<AuditLog, AuditError> {
        files::create_private_dir(&paths.dir).map_err(|e| AuditError::io(&paths.dir, e))?;
        if let Some(state_dir) = paths.key.parent() {
            // With `audit.dir` elsewhere, the state directory may not exist yet.
            files::create_private_dir(state_dir).map_err(|e| AuditError::io(state_dir, e))?;
        }
        let key = load_or_create_key(&paths.key)?;
        let torn = remove_torn_line(&paths.dir)?;
        let Verified {
            next_seq,
            last_hash,
            ..
        } = verify::verify(paths).map_err(AuditError::Broken)?;
        let mut log = AuditLog {
            paths: paths.clone(),
            key,
            current: None,
            next_seq,
            prev: last_hash.unwrap_or_else(|| GENESIS.to_string()),
            unsealed: 0,
            unsynced: false,
        };
        if let Some((file, bytes)) = torn {
            warn!(file = %file, bytes, "audit trail: removed a last line cut short by a crash");
            let now = OffsetDateTime::now_utc();
            log.append(now, &Event::TornLineRemoved { file, bytes })?;
            log.seal(now)?;
        }
        Ok(log)
    }

    /// Appends one record; returns its sequence number. A new UTC day seals the previous file
    /// and starts the next; the chain runs on.
    pub(crate) fn append(
        &mut self,
        now: OffsetDateTime,
        event: &impl Serialize,
    ) -> Result<u64, AuditError> {
        let event = serde_json::to_value(event)?;
        self.write_line(now, Some(event), None)
    }

    /// Seals the chain so far (nothing to do when no record was written since the last seal),
    /// flushes the file to disk and moves the anchor.
    pub(crate) fn seal(&mut self, now: OffsetDateTime) -> Result<(), AuditError> {
        if self.unsealed == 0 {
            return Ok(());
        }
        let mac = chain::seal_mac(self.key.expose_secret(), self.next_seq, &self.prev);
        let seq = self.write_line(now, None, Some(mac))?;
        self.sync()?;
        let anchor = Anchor {
            seq,
            hash: self.prev.clone(),
        };
        let text = serde_json::to_vec(&anchor)?;
        files::replace(&self.paths.anchor, &text, Mode::Private)
            .map_err(|e| AuditError::io(&self.paths.anchor, e))?;
        self.unsealed = 0;
        Ok(())
    }

    /// Flushes what was written to disk.
    pub(crate) fn sync(&mut self) -> Result<(), AuditError> {
        if let (true, Some((day, file))) = (self.unsynced, &self.current) {
            file.sync_data()
                .map_err(|e| AuditError::io(&self.file_path(day), e))?;
        }
        self.unsynced = false;
        Ok(())
    }

    fn write_line(
        &mut self,
        now: OffsetDateTime,
        event: Option<serde_json::Value>,
        seal: Option<String>,
    ) -> Result<u64, AuditError> {
        let now = now.to_offset(time::UtcOffset::UTC);
        let today = format!(
            "{:04}-{:02}-{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        // A seal closes the file the chain is in; a record goes to its own day's file.
        let day = match (&seal, &self.current) {
            (Some(_), Some((open, _))) => open.clone(),
            _ => today,
        };
        if self.current.as_ref().is_none_or(|(d, _)| *d != day) {
            if self.current.is_some() && event.is_some() {
                // The previous day's file ends with a seal.
                self.seal(now)?;
            }
            self.sync()?;
            let path = self.file_path(&day);
            let file = open_append(&path).map_err(|e| AuditError::io(&path, e))?;
            self.current = Some((day.clone(), file));
        }
        let seq = self.next_seq;
        let line = Line {
            seq,
            time: now
                .format(&Rfc3339)
                .unwrap_or_else(|_| now.unix_timestamp().to_string()),
            prev: self.prev.clone(),
            event,
            seal,
        };
        let mut bytes = serde_json::to_vec(&line)?;
        let hash = chain::hash(&bytes);
        bytes.push(b'\n');
        let path = self.file_path(&day);
        if let Some((_, file)) = &mut self.current {
            // One write per line: a crash leaves at most one incomplete last line.
            file.write_all(&bytes)
                .map_err(|e| AuditError::io(&path, e))?;
        }
        self.prev = hash;
        self.next_seq += 1;
        self.unsynced = true;
        if line.seal.is_none() {
            self.unsealed += 1;
        }
        Ok(seq)
    }

    fn file_path(&self, day: &str) -> PathBuf {
        self.paths.dir.join(format!("audit-{day}.jsonl"))
    }
}

/// Cuts the newest file back to its last complete line; returns its name and the bytes removed.
fn remove_torn_line(dir: &Path) -> Result<Option<(String, u64)>, AuditError> {
    let files = verify::trail_files(dir).map_err(|why| AuditError::Io {
        path: dir.to_owned(),
        source: std::io::Error::other(why),
    })?;
    let Some(last) = files.last() else {
        return Ok(None);
    };
    let bytes = std::fs::read(last).map_err(|e| AuditError::io(last, e))?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let file = OpenOptions::new()
        .write(true)
        .open(last)
        .map_err(|e| AuditError::io(last, e))?;
    file.set_len(keep as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io(last, e))?;
    let name = last
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(Some((name, (bytes.len() - keep) as u64)))
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The sealing key: 32 random bytes, base64, in a 0600 file created on first use.
fn load_or_create_key(path: &Path) -> Result<SecretSlice<u8>, AuditError> {
    let key_error = |why: String| AuditError::Key {
        path: path.to_owned(),
        why,
    };
    if let Some(key) = chain::read_key(path).map_err(key_error)? {
        return Ok(key);
    }
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| key_error(e.to_string()))?;
    files::replace(path, STANDARD.encode(&bytes).as_bytes(), Mode::Private)
        .map_err(|e| AuditError::io(path, e))?;
    Ok(bytes.into())
}
