//! The writer: appends records to the day's file, chains them, seals the chain, and keeps the
//! anchor (the last seal) outside the audit directory. One writer per trail; the gateway runs it
//! off the request path. A record is on disk once [`AuditLog::sync`] or a seal has run.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
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
    /// Each line is also printed on standard output (`audit.stdout`).
    echo: bool,
    /// Held (exclusively) around every write: the gateway and the command line (`user add`
    /// while it serves) append to one trail. It also holds where the chain stands ([`Tail`]),
    /// so that each writer carries on from the other's last line.
    lock: File,
}

/// Where the chain stands after the last line written by any writer: kept in the lock file.
#[derive(Debug, Serialize, serde::Deserialize)]
struct Tail {
    next_seq: u64,
    prev: String,
    /// The file of that last line (`YYYY-MM-DD`).
    day: Option<String>,
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
        let lock_path = paths.dir.join(LOCK_FILE);
        let lock = open_lock(&lock_path).map_err(|e| AuditError::io(&lock_path, e))?;
        let mut log = AuditLog {
            paths: paths.clone(),
            key,
            current: None,
            next_seq: 0,
            prev: GENESIS.to_string(),
            unsealed: 0,
            unsynced: false,
            echo: false,
            lock,
        };
        // Under the lock: another writer's line being written is not a torn one.
        let torn = log.locked(|log| {
            let torn = remove_torn_line(&log.paths.dir)?;
            let Verified {
                next_seq,
                last_hash,
                ..
            } = verify::verify(&log.paths).map_err(AuditError::Broken)?;
            log.next_seq = next_seq;
            log.prev = last_hash.unwrap_or_else(|| GENESIS.to_string());
            Ok(torn)
        })?;
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
        self.locked(|log| log.write_line(now, Some(event), None))
    }

    /// Seals the chain so far (nothing to do when no record was written since the last seal),
    /// flushes the file to disk and moves the anchor.
    pub(crate) fn seal(&mut self, now: OffsetDateTime) -> Result<(), AuditError> {
        if self.unsealed == 0 {
            return Ok(());
        }
        self.locked(|log| log.seal_locked(now))
    }

    fn seal_locked(&mut self, now: OffsetDateTime) -> Result<(), AuditError> {
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
                self.seal_locked(now)?;
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
        if self.echo {
            // One locked write per line, like the log lines it sits among.
            let _ = std::io::stdout().lock().write_all(&bytes);
        }
        self.prev = hash;
        self.next_seq += 1;
        self.unsynced = true;
        if line.seal.is_none() {
            self.unsealed += 1;
        }
        Ok(seq)
    }

    /// Runs `f` holding the trail's lock, after catching up with what another writer wrote,
    /// and notes where the chain stands for the next one.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut AuditLog) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        let lock_path = self.paths.dir.join(LOCK_FILE);
        self.lock
            .lock()
            .map_err(|e| AuditError::io(&lock_path, e))?;
        let result = self.catch_up().and_then(|()| f(self));
        let saved = result.is_ok().then(|| self.save_tail()).transpose();
        let _ = self.lock.unlock();
        saved?;
        result
    }

    /// Carries on from another writer's last line, when it wrote after this one.
    fn catch_up(&mut self) -> Result<(), AuditError> {
        let mut text = String::new();
        (&self.lock)
            .seek(SeekFrom::Start(0))
            .and_then(|_| (&self.lock).read_to_string(&mut text))
            .map_err(|e| AuditError::io(&self.paths.dir.join(LOCK_FILE), e))?;
        let Ok(tail) = serde_json::from_str::<Tail>(&text) else {
            return Ok(());
        };
        if tail.next_seq <= self.next_seq {
            return Ok(());
        }
        self.next_seq = tail.next_seq;
        self.prev = tail.prev;
        // A seal goes into the file of the last line, whoever wrote it.
        let open_day = self.current.as_ref().map(|(d, _)| d.clone());
        if let Some(day) = tail.day.filter(|d| Some(d) != open_day.as_ref()) {
            self.sync()?;
            let path = self.file_path(&day);
            let file = open_append(&path).map_err(|e| AuditError::io(&path, e))?;
            self.current = Some((day, file));
        }
        Ok(())
    }

    fn save_tail(&mut self) -> Result<(), AuditError> {
        let tail = Tail {
            next_seq: self.next_seq,
            prev: self.prev.clone(),
            day: self.current.as_ref().map(|(d, _)| d.clone()),
        };
        let text = serde_json::to_vec(&tail)?;
        self.lock
            .set_len(0)
            .and_then(|()| (&self.lock).seek(SeekFrom::Start(0)))
            .and_then(|_| (&self.lock).write_all(&text))
            .map_err(|e| AuditError::io(&self.paths.dir.join(LOCK_FILE), e))
    }

    /// Prints each line on standard output too, for a log collector.
    pub(crate) fn echo_to_stdout(&mut self, on: bool) {
        self.echo = on;
    }

    /// Deletes the daily files whose day is more than `retention` ago (never the open one),
    /// notes where the trail now starts (with a MAC, beside the key), and records the deletion.
    /// Returns the number of files deleted.
    pub(crate) fn prune(
        &mut self,
        now: OffsetDateTime,
        retention: std::time::Duration,
    ) -> Result<usize, AuditError> {
        self.locked(|log| log.prune_locked(now, retention))
    }

    fn prune_locked(
        &mut self,
        now: OffsetDateTime,
        retention: std::time::Duration,
    ) -> Result<usize, AuditError> {
        let listing = |why: String| AuditError::Io {
            path: self.paths.dir.clone(),
            source: std::io::Error::other(why),
        };
        let cutoff = now - retention;
        let cutoff = format!(
            "audit-{:04}-{:02}-{:02}.jsonl",
            cutoff.year(),
            u8::from(cutoff.month()),
            cutoff.day()
        );
        let open = self.current.as_ref().map(|(day, _)| self.file_path(day));
        let files = verify::trail_files(&self.paths.dir).map_err(listing)?;
        let (old, kept): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| *n < *cutoff.as_str())
                && open.as_ref() != Some(f)
        });
        let Some(first_old) = old.first() else {
            return Ok(0);
        };
        // Where the trail starts now: the first line kept, or the next one to be written.
        let (start_seq, start_prev) = match kept.first() {
            Some(f) => first_line(f)?,
            None => (self.next_seq, self.prev.clone()),
        };
        let deleted_from = first_line(first_old).map_or(0, |(seq, _)| seq);
        let start = chain::Start::new(self.key.expose_secret(), start_seq, &start_prev);
        files::replace(
            &self.paths.start,
            &serde_json::to_vec(&start)?,
            Mode::Private,
        )
        .map_err(|e| AuditError::io(&self.paths.start, e))?;
        let mut names = Vec::with_capacity(old.len());
        for f in &old {
            std::fs::remove_file(f).map_err(|e| AuditError::io(f, e))?;
            names.push(
                f.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            );
        }
        let event = serde_json::to_value(Event::TrailPruned {
            files: names,
            first_seq: deleted_from,
            last_seq: start_seq.saturating_sub(1),
            last_hash: start_prev,
        })?;
        self.write_line(now, Some(event), None)?;
        self.seal_locked(now)?;
        Ok(old.len())
    }

    fn file_path(&self, day: &str) -> PathBuf {
        self.paths.dir.join(format!("audit-{day}.jsonl"))
    }
}

/// The sequence number and `prev` of a file's first line.
fn first_line(path: &Path) -> Result<(u64, String), AuditError> {
    let bytes = std::fs::read(path).map_err(|e| AuditError::io(path, e))?;
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line: Line = serde_json::from_slice(first).map_err(|_| AuditError::Io {
        path: path.to_owned(),
        source: std::io::Error::other("its first line is not a record"),
    })?;
    Ok((line.seq, line.prev))
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

/// The lock file, in the audit directory (its name is no trail file's).
const LOCK_FILE: &str = ".writer.lock";

fn open_lock(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).read(true).write(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
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
