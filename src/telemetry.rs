//! Logging: the tracing subscriber (JSON in containers or on request, text on a terminal),
//! written by a background thread so a slow log consumer never stalls a request, and the
//! redaction of credentials wherever headers are logged.

use std::fmt;

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, SET_COOKIE};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the background log writer alive; logs are flushed when it is dropped.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global subscriber. `format: None` picks JSON inside a container.
pub fn init(format: Option<LogFormat>, level: &str) -> LogGuard {
    let format = format.unwrap_or_else(|| {
        if crate::host::in_container() {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    });
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Losing log lines silently is worse than a short stall under a log flood.
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        // Buffered: the writer thread flushes each time its queue is empty, so a burst of
        // lines costs one write(2) instead of one per line.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let filter = EnvFilter::try_from_env("VIGIE_LOG")
        .or_else(|_| EnvFilter::builder().parse(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    // A second init (in tests) keeps the first subscriber.
    let _ = result;
    guard
}

/// Displays a header map with credentials and cookies replaced by `***`.
pub struct SafeHeaders<'a>(pub &'a HeaderMap);

/// Headers whose values never reach a log line.
pub fn is_sensitive(name: &http::HeaderName) -> bool {
    name == AUTHORIZATION
        || name == PROXY_AUTHORIZATION
        || name == COOKIE
        || name == SET_COOKIE
        || name.as_str().contains("token")
        || name.as_str().contains("secret")
        || name.as_str().contains("api-key")
}

impl fmt::Display for SafeHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, value) in self.0 {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            if is_sensitive(name) || value.is_sensitive() {
                write!(f, "{name}: ***")?;
            } else {
                write!(f, "{name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "__Host-vigie=s3cr3t".parse().unwrap());
        h.insert("authorization", "Basic Z2F0ZXdheTpwdw==".parse().unwrap());
        h.insert("token", "abc123".parse().unwrap());
        h.insert("accept", "image/jpeg".parse().unwrap());
        let s = SafeHeaders(&h).to_string();
        assert!(
            !s.contains("s3cr3t") && !s.contains("Z2F0") && !s.contains("abc123"),
            "{s}"
        );
        assert!(s.contains("accept: image/jpeg"), "{s}");
    }
}
