//! Reading the trail for a report: verify the whole chain first (`audit::verify`), then read the
//! records of the period, line by line. A broken trail is read all the same, as far as its lines
//! are readable: the report says where it broke.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Period;
use super::record::Ev;
use crate::audit::AuditPaths;
use crate::audit::verify::{trail_files, verify};

/// What the chain check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Integrity {
    /// The whole chain and every seal verified.
    pub(crate) intact: bool,
    pub(crate) files: usize,
    /// The last sequence number that verified; `None` when none did (or the trail is empty).
    /// After a break, conservative: the record before the line where the break was noticed may
    /// be the altered one (its successor names another hash), so it is not counted.
    pub(crate) verified_through: Option<u64>,
    /// Lines after the last seal (intact trail only).
    pub(crate) unsealed: u64,
    /// Where the chain breaks.
    pub(crate) broken: Option<BrokenAt>,
}

/// The first broken record, as `vigie audit verify` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct BrokenAt {
    pub(crate) file: String,
    /// 1-based; 0 when the problem is the trail as a whole.
    pub(crate) line: usize,
    pub(crate) seq: Option<u64>,
    pub(crate) what: String,
}

/// One record of the period.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) seq: u64,
    /// When it was written.
    pub(super) time: OffsetDateTime,
    pub(super) ev: Ev,
}

/// The trail as a report sees it.
#[derive(Debug, Clone)]
pub(crate) struct Trail {
    pub(crate) integrity: Integrity,
    pub(crate) period: Period,
    pub(super) records: Vec<Record>,
    /// Records of a type this version does not know.
    pub(crate) unknown: u64,
    /// Lines that are not a record at all, or a known type without its fields.
    pub(crate) unreadable: u64,
}

#[derive(Deserialize)]
struct RawLine {
    seq: u64,
    time: String,
    #[serde(default)]
    event: Option<serde_json::Value>,
}

impl Trail {
    /// Verifies the trail at `paths`, then reads the records of `period`. Fails only when a
    /// file cannot be read at all.
    pub(crate) fn read(paths: &AuditPaths, period: Period) -> Result<Trail, String> {
        let integrity = match verify(paths) {
            Ok(v) => Integrity {
                intact: true,
                files: v.files,
                verified_through: v.next_seq.checked_sub(1),
                unsealed: v.unsealed,
                broken: None,
            },
            Err(b) => Integrity {
                intact: false,
                files: trail_files(&paths.dir).map_or(0, |f| f.len()),
                verified_through: None,
                unsealed: 0,
                broken: Some(BrokenAt {
                    file: b.file.display().to_string(),
                    line: b.line,
                    seq: b.seq,
                    what: b.what,
                }),
            },
        };
        let mut trail = Trail {
            integrity,
            period,
            records: Vec::new(),
            unknown: 0,
            unreadable: 0,
        };
        let broken_at = trail
            .integrity
            .broken
            .as_ref()
            .map(|b| (PathBuf::from(&b.file), b.line));
        // The last sequence number read, and the last one read before the broken line.
        let (mut last, mut before_break) = (None, None);
        for file in trail_files(&paths.dir)? {
            trail.read_file(&file, &mut |seq, line| {
                last = Some(seq);
                if broken_at
                    .as_ref()
                    .is_some_and(|(f, l)| *f == file && line < *l)
                {
                    before_break = Some(seq);
                }
            })?;
        }
        if let Some(b) = &trail.integrity.broken {
            trail.integrity.verified_through = match (b.line, b.seq) {
                (0, Some(_)) => last,
                (0, None) => None,
                (_, Some(seq)) => seq.checked_sub(2),
                (_, None) => before_break.and_then(|s: u64| s.checked_sub(1)),
            };
        }
        Ok(trail)
    }

    /// Reads one file; `seen` is told each line's sequence number and 1-based line number.
    fn read_file(&mut self, file: &Path, seen: &mut dyn FnMut(u64, usize)) -> Result<(), String> {
        let f = std::fs::File::open(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        for (n, line) in std::io::BufReader::new(f).split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if line.is_empty() {
                continue;
            }
            let Ok(raw) = serde_json::from_slice::<RawLine>(&line) else {
                self.unreadable += 1;
                continue;
            };
            seen(raw.seq, n + 1);
            let Some(event) = raw.event else {
                continue; // a seal
            };
            let (Ok(time), Ok(ev)) = (
                OffsetDateTime::parse(&raw.time, &Rfc3339),
                serde_json::from_value::<Ev>(event),
            ) else {
                self.unreadable += 1;
                continue;
            };
            self.push(Record {
                seq: raw.seq,
                time,
                ev,
            });
        }
        Ok(())
    }

    /// Keeps the record if it falls in the period: a viewing when it meets the period, anything
    /// else when it was written in it.
    pub(super) fn push(&mut self, record: Record) {
        let inside = match &record.ev {
            Ev::StudyAccess { first, last, .. } => match (instant(first), instant(last)) {
                (Some(f), Some(l)) => self.period.overlaps(f, l),
                _ => self.period.contains(record.time),
            },
            _ => self.period.contains(record.time),
        };
        if matches!(record.ev, Ev::Other) {
            self.unknown += 1;
        } else if inside {
            self.records.push(record);
        }
    }
}

/// An RFC 3339 time from the trail.
pub(super) fn instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}
