//! The rules, fed the trail's events one at a time with the time each was written. Each keeps
//! what it needs in memory, bounded: the failed sign-ins of the last window (per account, per
//! address, overall), the studies and patients each user touched in the last window, the
//! addresses each user signed in from (`seen.rs`).
//!
//! "Far more than usual" is a fixed threshold per window (`alerts.volume`, 50 distinct studies
//! or patients per hour by default), not a multiple of the user's own average: a small
//! practice's few users have too little history for an average to mean much, and a fixed
//! number is one an administrator can read and tune.
//!
//! A rule fires on every event at or over its threshold; `delivery.rs` sends one alert per
//! rule and subject per `alerts.repeat_after` and counts the rest.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

use time::OffsetDateTime;

use super::message::{Facts, Scope};
use super::seen::Seen;
use super::{Alert, Severity, hours};
use crate::audit::Event;
use crate::audit::access::Operation;
use crate::config::AlertSettings;

/// Keys (accounts, addresses, users) a window map holds at most; beyond, expired keys are
/// dropped and new ones are counted only overall.
const KEYS: usize = 10_000;
/// Entries per key at most (a window never needs more than its threshold's worth, but a
/// threshold can be large).
const PER_KEY: usize = 10_000;

/// The times of recent events, per key.
struct Windows<K> {
    window: Duration,
    keys: HashMap<K, VecDeque<OffsetDateTime>>,
}

impl<K: Hash + Eq + Clone> Windows<K> {
    fn new(window: Duration) -> Self {
        Windows {
            window,
            keys: HashMap::new(),
        }
    }

    /// Adds one event at `at` for `key` and returns how many fall in the window ending at `at`.
    fn add(&mut self, key: &K, at: OffsetDateTime) -> usize {
        let window = self.window;
        if !self.keys.contains_key(key) && self.keys.len() >= KEYS {
            self.keys
                .retain(|_, times| times.back().is_some_and(|t| at - *t < window));
            if self.keys.len() >= KEYS {
                return 0;
            }
        }
        let times = self.keys.entry(key.clone()).or_default();
        push(times, at, window);
        times.len()
    }
}

fn push(times: &mut VecDeque<OffsetDateTime>, at: OffsetDateTime, window: Duration) {
    while times.front().is_some_and(|t| at - *t >= window) {
        times.pop_front();
    }
    if times.len() >= PER_KEY {
        times.pop_front();
    }
    times.push_back(at);
}

/// What one user touched recently.
type Touched = VecDeque<(OffsetDateTime, Option<String>, Option<String>)>;

/// Every rule's state.
pub(crate) struct Rules {
    s: AlertSettings,
    by_account: Windows<String>,
    by_address: Windows<IpAddr>,
    overall: VecDeque<OffsetDateTime>,
    touched: HashMap<String, Touched>,
    seen: Seen,
}

impl Rules {
    pub(crate) fn new(settings: &AlertSettings, seen: Seen) -> Rules {
        let w = settings.failed_sign_ins.window;
        Rules {
            s: settings.clone(),
            by_account: Windows::new(w),
            by_address: Windows::new(w),
            overall: VecDeque::new(),
            touched: HashMap::new(),
            seen,
        }
    }

    pub(crate) fn audit_failure(&self) -> bool {
        self.s.audit_failure
    }

    /// The alerts `event`, written at `at`, raises.
    pub(crate) fn observe(&mut self, at: OffsetDateTime, event: &Event) -> Vec<Alert> {
        let mut out = Vec::new();
        let mut raise = |severity, facts| {
            out.push(Alert {
                at,
                severity,
                facts,
            })
        };
        match event {
            Event::SignInRefused {
                account, client, ..
            } => {
                let f = &self.s.failed_sign_ins;
                let window = f.window;
                let client = super::network_of(*client);
                if let Some(a) = account {
                    let n = self.by_account.add(a, at);
                    if over(n, f.per_account) {
                        raise(Severity::High, failed(Scope::Account(a.clone()), n, window));
                    }
                }
                let n = self.by_address.add(&client, at);
                if over(n, f.per_address) {
                    raise(Severity::High, failed(Scope::Address(client), n, window));
                }
                push(&mut self.overall, at, window);
                let n = self.overall.len();
                if over(n, f.overall) {
                    raise(Severity::Critical, failed(Scope::All, n, window));
                }
            }
            Event::LockedOut {
                account,
                client,
                seconds,
            } if self.s.lockout => raise(
                Severity::High,
                Facts::Lockout {
                    account: account.clone(),
                    client: *client,
                    seconds: *seconds,
                },
            ),
            Event::SignedIn { user, client, .. } => {
                if self.seen.note(user, *client) && self.s.new_address {
                    raise(
                        Severity::Warning,
                        Facts::NewAddress {
                            user: user.clone(),
                            client: *client,
                        },
                    );
                }
                self.off_hours(at, user, *client, "signed in", &mut raise);
            }
            Event::StudyAccess {
                user,
                client,
                operation,
                patient,
                study,
                unresolved,
                bytes,
                ..
            } => {
                let study_key = study
                    .as_ref()
                    .map(|s| s.uid.clone())
                    .or_else(|| unresolved.as_ref().map(|u| u.resource.clone()));
                let patient_key = patient.as_ref().map(|p| p.id.clone());
                self.volume(at, user, study_key, patient_key, &mut raise);
                self.data(at, user, *client, *operation, *bytes, &mut raise);
            }
            Event::DataAccess {
                user,
                client,
                operation,
                bytes,
                ..
            } => self.data(at, user, *client, *operation, *bytes, &mut raise),
            // Never on its own alerts; the rest is not a rule's business.
            _ => {}
        }
        out
    }

    fn data(
        &mut self,
        at: OffsetDateTime,
        user: &str,
        client: IpAddr,
        operation: Operation,
        bytes: u64,
        raise: &mut impl FnMut(Severity, Facts),
    ) {
        let export = operation == Operation::Export;
        if self.s.downloads && (operation == Operation::Download || export) {
            raise(
                Severity::Warning,
                Facts::Download {
                    user: user.to_owned(),
                    client,
                    export,
                    bytes,
                },
            );
        }
        let action = match operation {
            Operation::Download | Operation::Export => "downloaded",
            Operation::Search => "searched",
            _ => "accessed data",
        };
        self.off_hours(at, user, client, action, raise);
    }

    fn off_hours(
        &self,
        at: OffsetDateTime,
        user: &str,
        client: IpAddr,
        action: &'static str,
        raise: &mut impl FnMut(Severity, Facts),
    ) {
        let Some(h) = &self.s.off_hours else { return };
        if let Some(local) = hours::outside(h, at) {
            raise(
                Severity::Warning,
                Facts::OffHours {
                    user: user.to_owned(),
                    client,
                    local,
                    action,
                },
            );
        }
    }

    fn volume(
        &mut self,
        at: OffsetDateTime,
        user: &str,
        study: Option<String>,
        patient: Option<String>,
        raise: &mut impl FnMut(Severity, Facts),
    ) {
        let v = &self.s.volume;
        if v.studies == 0 && v.patients == 0 {
            return;
        }
        let window = v.window;
        if !self.touched.contains_key(user) && self.touched.len() >= KEYS {
            self.touched
                .retain(|_, t| t.back().is_some_and(|(t, ..)| at - *t < window));
            if self.touched.len() >= KEYS {
                return;
            }
        }
        let touched = self.touched.entry(user.to_owned()).or_default();
        while touched.front().is_some_and(|(t, ..)| at - *t >= window) {
            touched.pop_front();
        }
        if touched.len() >= PER_KEY {
            touched.pop_front();
        }
        touched.push_back((at, study, patient));
        let studies: HashSet<_> = touched.iter().filter_map(|(_, s, _)| s.as_ref()).collect();
        let patients: HashSet<_> = touched.iter().filter_map(|(_, _, p)| p.as_ref()).collect();
        for (count, limit, what) in [
            (studies.len(), v.studies, "studies"),
            (patients.len(), v.patients, "patients"),
        ] {
            if over(count, limit) {
                raise(
                    Severity::High,
                    Facts::Volume {
                        user: user.to_owned(),
                        what,
                        count,
                        window,
                    },
                );
            }
        }
    }
}

/// At or over a threshold that is not 0 (off).
fn over(count: usize, limit: u32) -> bool {
    limit != 0 && count >= limit as usize
}

fn failed(scope: Scope, count: usize, window: Duration) -> Facts {
    Facts::FailedSignIns {
        scope,
        count,
        window,
    }
}

#[cfg(test)]
mod tests;
