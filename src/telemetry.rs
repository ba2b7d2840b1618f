//! Logging: the tracing subscriber (JSON in containers or on request, text on a terminal),
//! written by a background thread so a slow log consumer never stalls a request. No log line
//! carries a header value: the access log names the method, path, status, sizes, user and
//! reason, never cookies or credentials.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Keeps the background log writer alive; logs are flushed when it is dropped.
pub(crate) type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Installs the global subscriber. `format: None` picks JSON inside a container.
pub(crate) fn init(format: Option<LogFormat>, level: &str) -> LogGuard {
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
