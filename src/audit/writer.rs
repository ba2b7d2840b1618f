//! The trail's writer thread and the handle the request path holds. Recording an event only
//! puts it in a bounded queue ([`Auditor::record`] never blocks and never touches the disk); one
//! thread per gateway appends what arrives in batches, flushes to disk every second, seals the
//! chain every minute and once more when the gateway stops.
//!
//! A full queue (the disk far slower than the requests) drops the event, counts it and logs an
//! error: the gateway keeps serving rather than stall the viewer on its own bookkeeping. The
//! count is in the log line; a trail with drops says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tracing::{error, info};

use super::access::viewing::{AccessSink, Msg as AccessMsg};
use super::{AuditError, AuditLog, AuditPaths, Event};

/// Events waiting for the writer at most.
const QUEUE: usize = 65_536;
/// How often written records reach the disk.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How often the chain is sealed while records arrive.
const SEAL_INTERVAL: Duration = Duration::from_secs(60);
/// How often records past `audit.retention` are looked for (and at start).
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// How the gateway's writer runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterOptions {
    /// Records older than this are deleted.
    pub(crate) retention: Duration,
    /// Each line is also printed on standard output.
    pub(crate) stdout: bool,
}

impl WriterOptions {
    pub(crate) fn of(config: &crate::config::Config) -> WriterOptions {
        WriterOptions {
            retention: config.audit.retention,
            stdout: config.audit.stdout,
        }
    }
}

/// Told of each record once it is written, and of each failure to write or seal (the alerts,
/// `crate::alert`). Called on the writer thread: it must not block.
pub(crate) trait Observer: Send + Sync {
    fn written(&self, at: OffsetDateTime, event: &Event);
    fn failed(&self, error: &AuditError);
}

/// What travels to the writer thread.
enum Msg {
    Event(OffsetDateTime, Box<Event>),
    /// Finish: write what is queued, seal, stop.
    Stop,
}

/// What the request path holds: cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct Auditor {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    /// Where finished requests to patient data go (`access::viewing`), once it runs.
    access: Option<AccessSink>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Sends accesses to patient data to `sink` from now on (for the clones made after).
    pub(crate) fn set_access(&mut self, sink: AccessSink) {
        self.access = Some(sink);
    }

    /// Where the request path hands accesses to patient data, when they are recorded.
    pub(crate) fn access(&self) -> Option<&AccessSink> {
        self.access.as_ref()
    }

    /// Queues `event`, stamped now.
    pub(crate) fn record(&self, event: Event) {
        if let (Some(sink), Some(session)) = (&self.access, ended_session(&event)) {
            sink.send(AccessMsg::EndSession(Arc::from(session)));
        }
        match self
            .tx
            .try_send(Msg::Event(OffsetDateTime::now_utc(), Box::new(event)))
        {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // 1, 2, 4, 8…: the log says it without flooding.
                if n.is_power_of_two() {
                    error!(
                        dropped = n,
                        "audit events dropped: the trail cannot keep up"
                    );
                }
            }
        }
    }
}

/// The writer thread; [`AuditWriter::finish`] (or dropping it) writes what is queued, seals and
/// waits for the thread.
pub(crate) struct AuditWriter {
    /// To wake the thread at once when finishing.
    tx: SyncSender<Msg>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AuditWriter {
    /// Opens the trail (verifying it: a broken trail stops the start) and starts the thread;
    /// `observer` hears of every record written and every failure.
    pub(crate) fn start(
        paths: &AuditPaths,
        options: WriterOptions,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<(Auditor, AuditWriter), AuditError> {
        let mut log = AuditLog::open(paths)?;
        log.echo_to_stdout(options.stdout);
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("vigie-audit".into())
            .spawn({
                let stop = stop.clone();
                move || run(log, rx, &stop, options.retention, observer.as_deref())
            })
            .map_err(|e| AuditError::io(&paths.dir, e))?;
        info!(dir = %paths.dir.display(), "audit trail verified and open");
        Ok((
            Auditor {
                tx: tx.clone(),
                dropped: Arc::new(AtomicU64::new(0)),
                access: None,
            },
            AuditWriter {
                tx,
                stop,
                thread: Some(thread),
            },
        ))
    }

    /// Writes what is queued, seals, and waits for the thread (at most about a second).
    pub(crate) fn finish(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        // A full queue cannot take it: the flag is seen within a second then.
        let _ = self.tx.try_send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn run(
    mut log: AuditLog,
    rx: Receiver<Msg>,
    stop: &AtomicBool,
    retention: Duration,
    observer: Option<&dyn Observer>,
) {
    let (mut synced, mut sealed) = (Instant::now(), Instant::now());
    prune(&mut log, retention);
    let mut pruned = Instant::now();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let wait = if stopping {
            Duration::ZERO
        } else {
            SYNC_INTERVAL
        };
        match rx.recv_timeout(wait) {
            Ok(msg) => {
                let mut next = Some(msg);
                // The batch: everything already queued.
                while let Some(msg) = next {
                    match msg {
                        Msg::Event(at, event) => write(&mut log, at, &event, observer),
                        Msg::Stop => stop.store(true, Ordering::Release),
                    }
                    next = rx.try_recv().ok();
                }
            }
            Err(RecvTimeoutError::Timeout) if stopping => break,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if synced.elapsed() >= SYNC_INTERVAL {
            if let Err(e) = log.sync() {
                error!(error = %e, "audit trail: cannot flush to disk");
                if let Some(o) = observer {
                    o.failed(&e);
                }
            }
            synced = Instant::now();
        }
        if sealed.elapsed() >= SEAL_INTERVAL {
            seal(&mut log);
            sealed = Instant::now();
        }
        if pruned.elapsed() >= PRUNE_INTERVAL {
            prune(&mut log, retention);
            pruned = Instant::now();
        }
    }
    seal(&mut log);
}

fn write(log: &mut AuditLog, at: OffsetDateTime, event: &Event, observer: Option<&dyn Observer>) {
    match log.append(at, event) {
        Ok(_) => {
            if let Some(o) = observer {
                o.written(at, event);
            }
        }
        Err(e) => {
            error!(error = %e, "audit trail: a record could not be written");
            if let Some(o) = observer {
                o.failed(&e);
            }
        }
    }
}

fn prune(log: &mut AuditLog, retention: Duration) {
    match log.prune(OffsetDateTime::now_utc(), retention) {
        Ok(0) => {}
        Ok(n) => info!(
            files = n,
            "audit trail: deleted the records past audit.retention"
        ),
        Err(e) => error!(error = %e, "audit trail: cannot delete the records past audit.retention"),
    }
}

fn seal(log: &mut AuditLog) {
    if let Err(e) = log.seal(OffsetDateTime::now_utc()) {
        error!(error = %e, "audit trail: cannot seal");
    }
}

/// The session an event ends, if it ends one: its viewings close.
fn ended_session(event: &Event) -> Option<&str> {
    match event {
        Event::SignedOut { session, .. }
        | Event::SessionRevoked { session, .. }
        | Event::SessionExpired { session, .. } => Some(session),
        _ => None,
    }
}
