//! From requests to records: the task that receives every finished request to patient data,
//! learns whom it concerns (`resolve.rs`), and writes the trail's records.
//!
//! Views and downloads are grouped: one user's requests to one study (or one patient, when the
//! URLs name no study), in one session, with one operation, make one viewing, recorded when it
//! closes as a `study_access` with its first and last time, request count and bytes. A viewing
//! closes after `audit.viewing_idle` without a request, when its session ends (sign-out,
//! revocation, expiry), or when the gateway stops. Every other operation (search, upload,
//! modify, delete, export) is recorded request by request (`data_access`).
//!
//! Nothing waits for the upstream on the request path: a request whose data is not yet known
//! waits here while the question is asked (four at a time), and the requests behind it for the
//! same data wait with it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, warn};

use super::resolve::{Resolver, Subject};
use super::{Operation, Target, Touch};
use crate::audit::event::Unresolved;
use crate::audit::{Auditor, Event};

/// Requests waiting for the task at most; beyond, they are counted as lost and logged.
const QUEUE: usize = 65_536;
/// Questions to the upstream at once.
pub(crate) const CONCURRENT_LOOKUPS: usize = 4;
/// Refusals by the gate waiting at most.
const REFUSALS_QUEUE: usize = 8_192;
/// How often the queue is emptied.
const DRAIN_EVERY: Duration = Duration::from_millis(20);
/// At shutdown, how long the last questions may take.
const LAST_LOOKUPS: Duration = Duration::from_secs(5);

/// A finished request to patient data, as the request path hands it over.
#[derive(Debug)]
pub(crate) struct Access {
    /// When its response ended.
    pub(crate) at: OffsetDateTime,
    pub(crate) user: Arc<str>,
    pub(crate) session: Arc<str>,
    pub(crate) client: IpAddr,
    pub(crate) touch: Touch,
    pub(crate) method: http::Method,
    /// The path (no query), for the operations recorded one by one.
    pub(crate) path: Option<Box<str>>,
    pub(crate) request_id: Option<http::HeaderValue>,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
}

/// What the request path and the sign-in code send.
#[derive(Debug)]
pub(crate) enum Msg {
    Access(Box<Access>),
    /// Start finding out whom this concerns now: the request is about to delete or change it,
    /// and waits (on the `Notify`) until it is known.
    Hint(Target, Option<Arc<tokio::sync::Notify>>),
    /// The session ended: its viewings close.
    EndSession(Arc<str>),
    /// The session gate refused a request (no valid session).
    Refused {
        at: OffsetDateTime,
        client: IpAddr,
        reason: &'static str,
        path: Box<str>,
    },
}

/// The request path's end of the queue: never blocks.
#[derive(Debug, Clone)]
pub(crate) struct AccessSink {
    tx: mpsc::Sender<Msg>,
    /// The gate's refusals have a queue of their own: a flood of requests without a session
    /// fills it, never the one of signed-in users' accesses.
    refusals: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
    refusals_dropped: Arc<AtomicU64>,
}

impl AccessSink {
    pub(crate) fn send(&self, msg: Msg) {
        let (tx, dropped, what) = match msg {
            Msg::Refused { .. } => (
                &self.refusals,
                &self.refusals_dropped,
                "requests refused by the gate not counted: the audit trail cannot keep up",
            ),
            _ => (
                &self.tx,
                &self.dropped,
                "accesses to patient data not recorded: the audit trail cannot keep up",
            ),
        };
        if tx.try_send(msg).is_err() {
            let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                error!(dropped = n, "{what}");
            }
        }
    }
}

/// The task's end of the two queues.
#[derive(Debug)]
pub(crate) struct Inbox {
    accesses: mpsc::Receiver<Msg>,
    refusals: mpsc::Receiver<Msg>,
}

impl Inbox {
    /// The next message queued, accesses first; `None` when both are empty; `Err` when both
    /// are empty and every sender is gone (or the queues were closed).
    fn try_recv(&mut self) -> Result<Option<Msg>, ()> {
        use mpsc::error::TryRecvError::Disconnected;
        let first = self.accesses.try_recv();
        if let Ok(m) = first {
            return Ok(Some(m));
        }
        match self.refusals.try_recv() {
            Ok(m) => Ok(Some(m)),
            Err(Disconnected) if matches!(first, Err(Disconnected)) => Err(()),
            Err(_) => Ok(None),
        }
    }

    fn close(&mut self) {
        self.accesses.close();
        self.refusals.close();
    }
}

/// The queues, before the task that empties them is started.
pub(crate) fn channel() -> (AccessSink, Inbox) {
    let (tx, accesses) = mpsc::channel(QUEUE);
    let (refusals_tx, refusals) = mpsc::channel(REFUSALS_QUEUE);
    (
        AccessSink {
            tx,
            refusals: refusals_tx,
            dropped: Arc::default(),
            refusals_dropped: Arc::default(),
        },
        Inbox { accesses, refusals },
    )
}

/// The running task; [`Viewings::finish`] records what is open and waits for it.
#[derive(Debug)]
pub(crate) struct Viewings {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Viewings {
    /// Starts the task on the current runtime. `auditor` receives the records.
    pub(crate) fn spawn(
        rx: Inbox,
        resolver: Resolver,
        auditor: Auditor,
        idle: Duration,
    ) -> Viewings {
        let (stop, stopped) = oneshot::channel();
        let state = State {
            resolver,
            auditor,
            idle,
            open: HashMap::new(),
            refusals: HashMap::new(),
            hinted: HashMap::new(),
            waiting: HashMap::new(),
            lookups: JoinSet::new(),
            permits: Arc::new(Semaphore::new(CONCURRENT_LOOKUPS)),
        };
        Viewings {
            stop,
            task: tokio::spawn(state.run(rx, stopped)),
        }
    }

    /// Records what is still open (asking the upstream for at most a few seconds more) and
    /// stops.
    pub(crate) async fn finish(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            error!(error = %e, "audit trail: the access recorder stopped abnormally");
        }
    }
}

type GroupKey = (Arc<str>, Operation, String);

/// Distinct addresses whose refusals are counted apart; beyond, they are recorded at once.
const MAX_REFUSING_ADDRESSES: usize = 10_000;

/// The gate's refusals of one address for one reason, being counted.
struct Refusals {
    first: OffsetDateTime,
    last: OffsetDateTime,
    requests: u64,
    first_path: Box<str>,
    last_seen: Instant,
}

/// One viewing in progress.
struct Viewing {
    user: Arc<str>,
    client: IpAddr,
    subject: Result<Subject, Unresolved>,
    first: OffsetDateTime,
    last: OffsetDateTime,
    requests: u64,
    failed: u64,
    bytes: u64,
    first_request: Option<String>,
    last_seen: Instant,
}

type Lookup = (Target, Option<Result<Subject, Unresolved>>);

struct State {
    resolver: Resolver,
    auditor: Auditor,
    idle: Duration,
    open: HashMap<GroupKey, Viewing>,
    refusals: HashMap<(IpAddr, &'static str), Refusals>,
    /// Destructive requests waiting until whom they concern is known.
    hinted: HashMap<Target, Vec<Arc<tokio::sync::Notify>>>,
    /// Accesses whose data is being looked up, by what they name.
    waiting: HashMap<Target, Vec<Access>>,
    lookups: JoinSet<Lookup>,
    permits: Arc<Semaphore>,
}

impl State {
    async fn run(mut self, mut rx: Inbox, mut stopped: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1).min(self.idle));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The queue is emptied on a short beat rather than on each message: a task woken for
        // every finished request cost a context switch per image in the benchmark.
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'run: loop {
            tokio::select! {
                _ = drain.tick() => loop {
                    match rx.try_recv() {
                        Ok(Some(msg)) => self.take(msg),
                        Ok(None) => break,
                        Err(()) => break 'run,
                    }
                },
                Some(done) = self.lookups.join_next() => self.looked_up(done),
                _ = tick.tick() => self.close_idle(),
                _ = &mut stopped => break,
            }
        }
        // What was queued before the stop, then the last answers, then everything open.
        rx.close();
        while let Ok(Some(msg)) = rx.try_recv() {
            self.take(msg);
        }
        let deadline = Instant::now() + LAST_LOOKUPS;
        while !self.lookups.is_empty() {
            match tokio::time::timeout_at(deadline, self.lookups.join_next()).await {
                Ok(Some(done)) => self.looked_up(done),
                Ok(None) => break,
                Err(_) => {
                    warn!(
                        "audit trail: the upstream did not say whom some accesses concern before the gateway stopped"
                    );
                    self.lookups.abort_all();
                    break;
                }
            }
        }
        for waiter in self.hinted.drain().flat_map(|(_, w)| w) {
            waiter.notify_one();
        }
        for (target, accesses) in std::mem::take(&mut self.waiting) {
            let why = Unresolved {
                resource: super::resolve::key(&target).unwrap_or_default(),
                why: "the gateway stopped before the upstream answered".into(),
            };
            for a in accesses {
                self.fold(a, Some(Err(why.clone())));
            }
        }
        let open: Vec<GroupKey> = self.open.keys().cloned().collect();
        for key in open {
            self.close(&key);
        }
        let refusing: Vec<(IpAddr, &'static str)> = self.refusals.keys().copied().collect();
        for key in refusing {
            self.close_refusals(key);
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Access(a) => {
                let a = *a;
                let target = &a.touch.target;
                if super::resolve::key(target).is_none() {
                    return self.fold(a, None);
                }
                if let Some(known) = self.resolver.cached(target) {
                    return self.fold(a, Some(known));
                }
                let target = target.clone();
                self.wait_for(target, Some(a));
            }
            Msg::Hint(target, done) => {
                if super::resolve::key(&target).is_some() && self.resolver.cached(&target).is_none()
                {
                    self.hinted.entry(target.clone()).or_default().extend(done);
                    self.wait_for(target, None);
                } else if let Some(done) = done {
                    done.notify_one();
                }
            }
            Msg::Refused {
                at,
                client,
                reason,
                path,
            } => {
                let key = (client, reason);
                if !self.refusals.contains_key(&key)
                    && self.refusals.len() >= MAX_REFUSING_ADDRESSES
                {
                    // Too many addresses at once: recorded one by one rather than forgotten.
                    self.refusals.insert(key, Refusals::new(at, path));
                    return self.close_refusals(key);
                }
                let r = self
                    .refusals
                    .entry(key)
                    .or_insert_with(|| Refusals::new(at, path.clone()));
                r.first = r.first.min(at);
                r.last = r.last.max(at);
                r.requests += 1;
                r.last_seen = Instant::now();
            }
            Msg::EndSession(session) => {
                let ended: Vec<GroupKey> = self
                    .open
                    .keys()
                    .filter(|k| k.0 == session)
                    .cloned()
                    .collect();
                for key in ended {
                    self.close(&key);
                }
            }
        }
    }

    /// Parks `access` until its data is known, asking the upstream if nobody has yet.
    fn wait_for(&mut self, target: Target, access: Option<Access>) {
        let asked = self.waiting.contains_key(&target);
        let list = self.waiting.entry(target.clone()).or_default();
        list.extend(access);
        if !asked {
            let resolver = self.resolver.clone();
            let permits = self.permits.clone();
            self.lookups.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let result = resolver.resolve(&target).await;
                (target, result)
            });
        }
    }

    fn looked_up(&mut self, done: Result<Lookup, tokio::task::JoinError>) {
        let Ok((target, result)) = done else {
            return;
        };
        for waiter in self.hinted.remove(&target).unwrap_or_default() {
            waiter.notify_one();
        }
        for a in self.waiting.remove(&target).unwrap_or_default() {
            self.fold(a, result.clone());
        }
    }

    /// Adds one access to its viewing, or records it on its own.
    fn fold(&mut self, a: Access, subject: Option<Result<Subject, Unresolved>>) {
        let operation = a.touch.operation;
        let subject = match subject {
            Some(s) if operation.is_grouped() => s,
            other => return self.record_one(a, other),
        };
        let failed = u64::from(a.status >= 400);
        let key: GroupKey = (a.session.clone(), operation, group_name(&subject));
        let now = Instant::now();
        let v = self.open.entry(key).or_insert_with(|| Viewing {
            user: a.user.clone(),
            client: a.client,
            subject,
            first: a.at,
            last: a.at,
            requests: 0,
            failed: 0,
            bytes: 0,
            first_request: a
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            last_seen: now,
        });
        v.first = v.first.min(a.at);
        v.last = v.last.max(a.at);
        v.requests += 1;
        v.failed += failed;
        v.bytes += a.bytes;
        v.last_seen = now;
    }

    fn record_one(&self, a: Access, subject: Option<Result<Subject, Unresolved>>) {
        let (patient, study, unresolved) = split(subject);
        let criteria = match a.touch.target {
            Target::Query(c) => c,
            _ => Vec::new(),
        };
        self.auditor.record(Event::DataAccess {
            user: a.user.to_string(),
            session: a.session.to_string(),
            client: a.client,
            operation: a.touch.operation,
            method: a.method.to_string(),
            path: a.path.map(String::from).unwrap_or_default(),
            criteria,
            status: a.status,
            bytes: a.bytes,
            request_id: a
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .map(String::from),
            patient,
            study,
            unresolved,
        });
    }

    fn close_idle(&mut self) {
        let idle = self.idle;
        let done: Vec<GroupKey> = self
            .open
            .iter()
            .filter(|(_, v)| v.last_seen.elapsed() >= idle)
            .map(|(k, _)| k.clone())
            .collect();
        for key in done {
            self.close(&key);
        }
        let quiet: Vec<(IpAddr, &'static str)> = self
            .refusals
            .iter()
            .filter(|(_, r)| r.last_seen.elapsed() >= idle)
            .map(|(k, _)| *k)
            .collect();
        for key in quiet {
            self.close_refusals(key);
        }
    }

    fn close_refusals(&mut self, key: (IpAddr, &'static str)) {
        let Some(r) = self.refusals.remove(&key) else {
            return;
        };
        self.auditor.record(Event::GateRefusals {
            client: key.0,
            reason: key.1,
            first: rfc3339(r.first),
            last: rfc3339(r.last),
            requests: r.requests.max(1),
            first_path: r.first_path.into(),
        });
    }

    fn close(&mut self, key: &GroupKey) {
        let Some(v) = self.open.remove(key) else {
            return;
        };
        let (patient, study, unresolved) = split(Some(v.subject));
        self.auditor.record(Event::StudyAccess {
            user: v.user.to_string(),
            session: key.0.to_string(),
            client: v.client,
            operation: key.1,
            patient,
            study,
            unresolved,
            first: rfc3339(v.first),
            last: rfc3339(v.last),
            requests: v.requests,
            failed: v.failed,
            bytes: v.bytes,
            first_request: v.first_request,
        });
    }
}

impl Refusals {
    /// Counted from zero: the message that opens it adds the first.
    fn new(at: OffsetDateTime, path: Box<str>) -> Refusals {
        Refusals {
            first: at,
            last: at,
            requests: 0,
            first_path: path,
            last_seen: Instant::now(),
        }
    }
}

/// The name a viewing is grouped by: the study, else the patient, else what the URL named.
fn group_name(subject: &Result<Subject, Unresolved>) -> String {
    match subject {
        Ok(Subject { study: Some(s), .. }) => format!("study {}", s.uid),
        Ok(Subject {
            patient: Some(p), ..
        }) => format!("patient {}", p.id),
        Ok(_) => "unnamed".into(),
        Err(u) => u.resource.clone(),
    }
}

type Split = (
    Option<crate::audit::event::Patient>,
    Option<crate::audit::event::Study>,
    Option<Unresolved>,
);

fn split(subject: Option<Result<Subject, Unresolved>>) -> Split {
    match subject {
        Some(Ok(s)) => (s.patient, s.study, None),
        Some(Err(u)) => (None, None, Some(u)),
        None => (None, None, None),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
