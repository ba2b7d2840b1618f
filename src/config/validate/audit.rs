//! `audit:`: where the trail goes, what it records, how long it keeps it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Validator;
use crate::config::AuditSettings;
use crate::config::file::FileAudit;

/// The CNIL recommends keeping access logs of health data six months to a year.
const DAY: u64 = 24 * 3600;
const DEFAULT_RETENTION: Duration = Duration::from_secs(365 * DAY);
const DEFAULT_VIEWING_IDLE: Duration = Duration::from_secs(15 * 60);

impl Validator {
    pub(super) fn audit(&mut self, a: FileAudit, state_dir: &Path) -> AuditSettings {
        let dir = self.audit_dir(a.dir.as_deref(), state_dir);
        let record_access = a.record_access.unwrap_or(true);
        if !record_access {
            self.warning(
                "audit.record_access",
                "accesses to patient data are not recorded: the trail cannot say who saw which patient",
                "remove `record_access: false` unless another system records them",
            );
        }
        let viewing_idle = self.duration(
            a.viewing_idle.as_deref(),
            "audit.viewing_idle",
            DEFAULT_VIEWING_IDLE,
        );
        if viewing_idle < Duration::from_secs(1) || viewing_idle > Duration::from_secs(DAY) {
            self.error(
                "audit.viewing_idle",
                "must be between 1 second and 24 hours",
                "e.g. `15m`: a viewing closes after this long without a request for its study",
            );
        }
        let retention = self.duration(a.retention.as_deref(), "audit.retention", DEFAULT_RETENTION);
        if retention < Duration::from_secs(DAY) {
            self.error(
                "audit.retention",
                "must be at least one day",
                "write e.g. `12months` or `365d` (the CNIL recommends 6 to 12 months)",
            );
        } else if retention < Duration::from_secs(180 * DAY) {
            self.warning(
                "audit.retention",
                "records are deleted before six months",
                "the CNIL recommends keeping access logs of health data 6 to 12 months: e.g. `12months`",
            );
        }
        AuditSettings {
            dir,
            record_access,
            viewing_idle,
            retention,
            stdout: a.stdout.unwrap_or(false),
        }
    }

    /// `audit.dir`: an absolute path (a separate volume, ideally), not the state directory
    /// itself, where the sealing key lives.
    fn audit_dir(&mut self, dir: Option<&str>, state_dir: &std::path::Path) -> PathBuf {
        let Some(dir) = dir else {
            return state_dir.join("audit");
        };
        let path = PathBuf::from(dir.trim());
        if !path.is_absolute() {
            self.error(
                "audit.dir",
                format!("`{dir}` is not an absolute path"),
                "write the full path, e.g. /var/lib/vigie-audit (a separate volume is best)",
            );
        } else if path == state_dir {
            self.error(
                "audit.dir",
                "the audit trail cannot be the state directory itself",
                "use a directory of its own: the sealing key in state_dir must stay outside the trail",
            );
        }
        path
    }
}
