//! `log:`: format, level and the access log.

use super::Validator;
use crate::config::file::FileLog;
use crate::config::{LogFormat, LogSettings};

impl Validator {
    pub(super) fn log(&mut self, l: &FileLog) -> LogSettings {
        let format = match l.format.as_deref() {
            None | Some("auto") => None,
            Some("json") => Some(LogFormat::Json),
            Some("text") => Some(LogFormat::Text),
            Some(other) => {
                self.error(
                    "log.format",
                    format!("`{other}` is not a log format"),
                    "use \"json\", \"text\" or \"auto\" (JSON in containers)",
                );
                None
            }
        };
        let level = l.level.clone().unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::builder()
            .parse(&level)
            .is_err()
        {
            self.error(
                "log.level",
                format!("`{level}` is not a log level or filter"),
                "use error, warn, info, debug or trace",
            );
        }
        LogSettings {
            format,
            level,
            access_log: l.access_log.unwrap_or(true),
        }
    }
}
