//! `vigie audit verify`: walks every file of the trail in order and checks each line's place
//! (sequence numbers without gap or repeat), its link (the hash of the line before), every seal
//! (with the key), and that the trail reaches the last seal the writer recorded (the anchor).
//! The first failure is named by file, line and sequence number.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::AuditPaths;
use super::chain::{self, Anchor, GENESIS, Line, Start, read_key};

/// What a sound trail holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) files: usize,
    /// Records (seals excluded).
    pub(crate) records: u64,
    pub(crate) seals: u64,
    /// The sequence number the next line takes.
    pub(crate) next_seq: u64,
    /// The hash of the last line; `None` for an empty trail.
    pub(crate) last_hash: Option<String>,
    /// Lines after the last seal: not yet covered by a MAC.
    pub(crate) unsealed: u64,
    /// The first record kept: 0 unless `audit.retention` deleted older ones.
    pub(crate) first_seq: u64,
}

/// Where and how the trail is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    pub(crate) file: PathBuf,
    /// 1-based; 0 when the problem is the trail as a whole.
    pub(crate) line: usize,
    /// The sequence number concerned, when known.
    pub(crate) seq: Option<u64>,
    pub(crate) what: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: ", self.file.display(), self.line)?;
        } else {
            write!(f, "{}: ", self.file.display())?;
        }
        f.write_str(&self.what)
    }
}

/// Checks the whole trail at `paths`.
pub(crate) fn verify(paths: &AuditPaths) -> Result<Verified, Box<Broken>> {
    let whole = |what: String| {
        Box::new(Broken {
            file: paths.dir.clone(),
            line: 0,
            seq: None,
            what,
        })
    };
    let key = read_key(&paths.key).map_err(whole)?;
    let files = trail_files(&paths.dir).map_err(whole)?;
    let start = read_start(paths, key.as_ref()).map_err(whole)?;
    let mut v = Verified {
        files: files.len(),
        records: 0,
        seals: 0,
        next_seq: start.as_ref().map_or(0, |s| s.seq),
        last_hash: start.as_ref().map(|s| s.prev.clone()),
        unsealed: 0,
        first_seq: start.as_ref().map_or(0, |s| s.seq),
    };
    for file in &files {
        let bytes = std::fs::read(file)
            .map_err(|e| whole(format!("cannot read {}: {e}", file.display())))?;
        let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        // The text ends with a newline, so the last piece is empty; anything else is a line
        // whose write was cut short.
        let tail = lines.pop().unwrap_or_default();
        for (i, raw) in lines.iter().enumerate() {
            // Lines before the start are deleted records whose file a crash left behind.
            if v.records == 0 && v.seals == 0 && before_start(raw, v.first_seq) {
                continue;
            }
            check_line(raw, file, i + 1, key.as_ref(), &mut v)?;
        }
        if !tail.is_empty() {
            return Err(Box::new(Broken {
                file: file.clone(),
                line: lines.len() + 1,
                seq: Some(v.next_seq),
                what: "the last line is incomplete: the trail was cut, or a write was interrupted"
                    .into(),
            }));
        }
    }
    let anchor = match std::fs::read(&paths.anchor) {
        Ok(bytes) => Some(serde_json::from_slice::<Anchor>(&bytes).map_err(|_| {
            whole(format!(
                "the anchor {} is not readable",
                paths.anchor.display()
            ))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(whole(format!(
                "cannot read {}: {e}",
                paths.anchor.display()
            )));
        }
    };
    if let Some(a) = anchor
        && a.seq >= v.next_seq
    {
        let last = files.last().cloned().unwrap_or_else(|| paths.dir.clone());
        return Err(Box::new(Broken {
            file: last,
            line: 0,
            seq: Some(a.seq),
            what: format!(
                "truncated: the trail ends before record {}, which the gateway sealed{}",
                a.seq,
                match v.next_seq {
                    0 => " (no record is left)".to_string(),
                    n => format!(" (the last record left is {})", n - 1),
                }
            ),
        }));
    }
    Ok(v)
}

/// The start left by the last deletion of old records, checked with the key.
fn read_start(
    paths: &AuditPaths,
    key: Option<&secrecy::SecretSlice<u8>>,
) -> Result<Option<Start>, String> {
    let bytes = match std::fs::read(&paths.start) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", paths.start.display())),
    };
    let start: Start = serde_json::from_slice(&bytes)
        .map_err(|_| format!("the start record {} is not readable", paths.start.display()))?;
    match key {
        Some(k) if start.verifies(k.expose_secret()) => Ok(Some(start)),
        Some(_) => Err(format!(
            "the start record {} does not verify: altered, or made with another key",
            paths.start.display()
        )),
        None => Err(format!(
            "the start record {} exists but the sealing key is missing: restore audit-seal.key",
            paths.start.display()
        )),
    }
}

/// A line whose sequence number is before the trail's start (`first_seq`).
fn before_start(raw: &[u8], first_seq: u64) -> bool {
    #[derive(serde::Deserialize)]
    struct Seq {
        seq: u64,
    }
    first_seq > 0 && serde_json::from_slice::<Seq>(raw).is_ok_and(|l| l.seq < first_seq)
}

fn check_line(
    raw: &[u8],
    file: &Path,
    line: usize,
    key: Option<&secrecy::SecretSlice<u8>>,
    v: &mut Verified,
) -> Result<(), Box<Broken>> {
    let broken = |seq: Option<u64>, what: String| {
        Box::new(Broken {
            file: file.to_owned(),
            line,
            seq,
            what,
        })
    };
    let parsed: Line = serde_json::from_slice(raw).map_err(|_| {
        broken(
            None,
            format!(
                "not a record: altered, or written by something else (expected record {})",
                v.next_seq
            ),
        )
    })?;
    let seq = parsed.seq;
    if parsed.event.is_some() == parsed.seal.is_some() {
        return Err(broken(
            Some(seq),
            format!("record {seq} is neither an event nor a seal: altered"),
        ));
    }
    if seq > v.next_seq {
        return Err(broken(
            Some(seq),
            match seq - v.next_seq {
                1 => format!("record {} is missing (found {seq})", v.next_seq),
                _ => format!(
                    "records {} to {} are missing (found {seq})",
                    v.next_seq,
                    seq - 1
                ),
            },
        ));
    }
    if seq < v.next_seq {
        return Err(broken(
            Some(seq),
            format!(
                "record {seq} is out of order or repeated (expected record {})",
                v.next_seq
            ),
        ));
    }
    let expected_prev = v.last_hash.as_deref().unwrap_or(GENESIS);
    if parsed.prev != expected_prev {
        return Err(broken(
            Some(seq),
            match seq {
                0 => "record 0 does not start a trail: altered".to_string(),
                _ => format!(
                    "record {} was altered: record {seq} names another predecessor",
                    seq - 1
                ),
            },
        ));
    }
    if let Some(mac) = &parsed.seal {
        let Some(key) = key else {
            return Err(broken(
                Some(seq),
                "seal found but the sealing key is missing: restore audit-seal.key".into(),
            ));
        };
        if !chain::seal_verifies(key.expose_secret(), seq, &parsed.prev, mac) {
            return Err(broken(
                Some(seq),
                format!("seal {seq} does not verify: altered, or made with another key"),
            ));
        }
        v.seals += 1;
        v.unsealed = 0;
    } else {
        v.records += 1;
        v.unsealed += 1;
    }
    v.last_hash = Some(chain::hash(raw));
    v.next_seq = seq + 1;
    Ok(())
}

/// The trail's files, oldest first (their names sort by date).
pub(super) fn trail_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}
