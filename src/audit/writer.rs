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

use super::{AuditError, AuditLog, AuditPaths, Event};

/// Events waiting for the writer at most.
const QUEUE: usize = 65_536;
/// How often written records reach the disk.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How often the chain is sealed while records arrive.
const SEAL_INTERVAL: Duration = Duration::from_secs(60);

/// Told of each record once it is written, and of each failure to write or seal (the alerts,
/// `crate::alert`). Called on the writer thread: it must not block.
pub(crate) trait Observer: Send + Sync {
    fn written(&self, at: OffsetDateTime, event: &Event);
    fn failed(&self, error: &AuditError);
}

/// What travels to the writer thread.
enum Msg {
    Event(OffsetDateTime, Event),
    /// Finish: write what is queued, seal, stop.
    Stop,
}

/// What the request path holds: cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct Auditor {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Auditor {
    /// Queues `event`, stamped now.
    pub(crate) fn record(&self, event: Event) {
        match self
            .tx
            .try_send(Msg::Event(OffsetDateTime::now_utc(), event))
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
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<(Auditor, AuditWriter), AuditError> {
        let log = AuditLog::open(paths)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("vigie-audit".into())
            .spawn({
                let stop = stop.clone();
                move || run(log, rx, &stop, observer.as_deref())
            })
            .map_err(|e| AuditError::io(&paths.dir, e))?;
        info!(dir = %paths.dir.display(), "audit trail verified and open");
        Ok((
            Auditor {
                tx: tx.clone(),
                dropped: Arc::new(AtomicU64::new(0)),
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

fn run(mut log: AuditLog, rx: Receiver<Msg>, stop: &AtomicBool, observer: Option<&dyn Observer>) {
    let (mut synced, mut sealed) = (Instant::now(), Instant::now());
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

fn seal(log: &mut AuditLog) {
    if let Err(e) = log.seal(OffsetDateTime::now_utc()) {
        error!(error = %e, "audit trail: cannot seal");
    }
}
