//! `vigie breach report`: what the trail shows of an incident, gathered for the first draft of
//! the GDPR art. 33 notification (rendered by `breach_text.rs`, in the order of the CNIL's online
//! form), and the 72-hour deadline.
//!
//! Which accounts are "involved": those refused at sign-in, locked out, refused by the access
//! policy, whose sessions were revoked, or named in an alert's summary. The persons concerned
//! are counted as the distinct patients those accounts accessed in the period; the records, as
//! their studies and requests. "Awareness", from which the 72 hours run, is taken to be the first
//! alert of the period: the text says so, and the practice corrects it if it learnt otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use super::access::{Access, Alert, PeriodOut, Refusals, TrailOut, accesses, alerts};
use super::record::Ev;
use super::{Period, Trail};

/// GDPR art. 33(1): "not later than 72 hours after having become aware of it".
pub(crate) const DEADLINE: Duration = Duration::hours(72);

/// Where the notification stands against its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// No alert in the period: the trail cannot say when the practice became aware.
    Unknown,
    /// `awareness + 72 h` is still ahead, by `left`.
    Running {
        awareness: OffsetDateTime,
        due: OffsetDateTime,
        left: Duration,
    },
    /// It passed `late` ago.
    Overdue {
        awareness: OffsetDateTime,
        due: OffsetDateTime,
        late: Duration,
    },
}

impl Deadline {
    /// The deadline from the first alert `awareness`, as of `now`.
    pub(crate) fn compute(awareness: Option<OffsetDateTime>, now: OffsetDateTime) -> Deadline {
        let Some(awareness) = awareness else {
            return Deadline::Unknown;
        };
        let due = awareness + DEADLINE;
        if now <= due {
            Deadline::Running {
                awareness,
                due,
                left: due - now,
            }
        } else {
            Deadline::Overdue {
                awareness,
                due,
                late: now - due,
            }
        }
    }
}

/// One account's part in the period.
#[derive(Debug, Clone, Default)]
pub(crate) struct Involved {
    pub(crate) user: String,
    /// Why it is involved (`alert`, `sign-in refused`, …), as codes `breach_text.rs` words.
    pub(crate) why: BTreeSet<&'static str>,
    pub(crate) addresses: BTreeSet<String>,
    pub(crate) patients: BTreeSet<String>,
    pub(crate) studies: BTreeSet<String>,
    /// Access records by operation.
    pub(crate) operations: BTreeMap<String, u64>,
    pub(crate) requests: u64,
    pub(crate) bytes: u64,
}

/// One address's part.
#[derive(Debug, Clone, Default)]
pub(crate) struct Address {
    pub(crate) sign_in_failures: u64,
    pub(crate) lockouts: u64,
    pub(crate) accounts: BTreeSet<String>,
    pub(crate) in_alert: bool,
}

/// What the gateway did about it.
#[derive(Debug, Clone)]
pub(crate) struct Revocation {
    pub(crate) time: OffsetDateTime,
    pub(crate) user: String,
    pub(crate) reason: String,
}

/// The draft's content.
#[derive(Debug)]
pub(crate) struct BreachReport {
    pub(crate) period: PeriodOut,
    pub(crate) trail: TrailOut,
    pub(crate) now: OffsetDateTime,
    pub(crate) alerts: Vec<Alert>,
    pub(crate) refusals: Refusals,
    pub(crate) revocations: Vec<Revocation>,
    /// `vigie rotate-keys` runs: their time and whether they ended every session.
    pub(crate) key_rotations: Vec<(OffsetDateTime, bool)>,
    /// The accounts involved, by name.
    pub(crate) involved: BTreeMap<String, Involved>,
    /// The addresses involved.
    pub(crate) addresses: BTreeMap<String, Address>,
    /// Every account's activity in the period (for the volumes), by name.
    pub(crate) everyone: BTreeMap<String, Involved>,
    pub(crate) deadline: Deadline,
    /// The first alert's rule.
    pub(crate) first_rule: Option<String>,
}

impl BreachReport {
    /// Gathers the period of `trail`, with the deadline as of `now`.
    pub(crate) fn build(trail: &Trail, period: Period, now: OffsetDateTime) -> BreachReport {
        let alerts = alerts(trail);
        let refusals = Refusals::collect(trail, None);
        let mut revocations = Vec::new();
        let mut key_rotations = Vec::new();
        let mut known_users = BTreeSet::new();
        let mut sign_in_addresses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &trail.records {
            match &r.ev {
                Ev::SessionRevoked { user, reason, .. } => revocations.push(Revocation {
                    time: r.time,
                    user: user.clone(),
                    reason: reason.clone(),
                }),
                Ev::KeysRotated { end_all_sessions } => {
                    key_rotations.push((r.time, *end_all_sessions));
                }
                Ev::SignedIn { user, client } => {
                    known_users.insert(user.clone());
                    sign_in_addresses
                        .entry(user.clone())
                        .or_default()
                        .insert(client.clone());
                }
                _ => {}
            }
        }
        let all = accesses(trail);
        known_users.extend(all.iter().map(|a| a.user.clone()));
        let mut everyone: BTreeMap<String, Involved> = BTreeMap::new();
        for a in &all {
            tally(everyone.entry(a.user.clone()).or_default(), a);
        }
        for (user, addrs) in sign_in_addresses {
            everyone.entry(user).or_default().addresses.extend(addrs);
        }
        for (user, i) in everyone.iter_mut() {
            i.user = user.clone();
        }

        let mut involved: BTreeMap<String, Involved> = BTreeMap::new();
        let mut addresses: BTreeMap<String, Address> = BTreeMap::new();
        let mut involve = |user: &str, why: &'static str| {
            let entry = involved.entry(user.to_string()).or_insert_with(|| {
                everyone.get(user).cloned().unwrap_or_else(|| Involved {
                    user: user.to_string(),
                    ..Involved::default()
                })
            });
            entry.why.insert(why);
        };
        for s in &refusals.sign_ins {
            let a = addresses.entry(s.client.clone()).or_default();
            a.sign_in_failures += 1;
            if let Some(account) = &s.account {
                a.accounts.insert(account.clone());
                involve(account, "sign_in_refused");
            }
        }
        for l in &refusals.lockouts {
            let a = addresses.entry(l.client.clone()).or_default();
            a.lockouts += 1;
            if let Some(account) = &l.account {
                a.accounts.insert(account.clone());
                involve(account, "locked_out");
            }
        }
        for p in &refusals.policy {
            addresses
                .entry(p.client.clone())
                .or_default()
                .accounts
                .insert(p.user.clone());
            involve(&p.user, "access_refused");
        }
        for r in &revocations {
            involve(&r.user, "session_revoked");
        }
        for alert in &alerts {
            for word in words_of(&alert.summary) {
                if known_users.contains(word) {
                    involve(word, "alert");
                } else if word.parse::<IpAddr>().is_ok() {
                    addresses.entry(word.to_string()).or_default().in_alert = true;
                }
            }
        }
        // The involved accounts' own addresses are involved too.
        for i in involved.values() {
            for addr in &i.addresses {
                addresses
                    .entry(addr.clone())
                    .or_default()
                    .accounts
                    .insert(i.user.clone());
            }
        }
        let first = trail.records.iter().find_map(|r| match &r.ev {
            Ev::AlertRaised { rule, .. } => Some((r.time, rule.clone())),
            _ => None,
        });
        BreachReport {
            period: PeriodOut::of(period),
            trail: TrailOut::of(trail),
            now,
            alerts,
            refusals,
            revocations,
            key_rotations,
            involved,
            addresses,
            everyone,
            deadline: Deadline::compute(first.as_ref().map(|f| f.0), now),
            first_rule: first.map(|f| f.1),
        }
    }

    /// Distinct patients, studies, requests and downloads of `accounts`.
    pub(crate) fn figures<'a>(accounts: impl Iterator<Item = &'a Involved>) -> Figures {
        let mut f = Figures::default();
        let (mut patients, mut studies) = (BTreeSet::new(), BTreeSet::new());
        for i in accounts {
            patients.extend(i.patients.iter().cloned());
            studies.extend(i.studies.iter().cloned());
            f.requests += i.requests;
            f.downloads += i.operations.get("download").copied().unwrap_or(0);
        }
        f.patients = patients.len();
        f.studies = studies.len();
        f
    }
}

/// Counts for the "persons and records concerned".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub(crate) patients: usize,
    pub(crate) studies: usize,
    pub(crate) requests: u64,
    /// Download records (viewings that downloaded, and single download requests).
    pub(crate) downloads: u64,
}

fn tally(i: &mut Involved, a: &Access) {
    i.addresses.insert(a.client.clone());
    if let Some(p) = &a.patient {
        i.patients.insert(p.id.clone());
    }
    if let Some(s) = &a.study {
        i.studies.insert(s.uid.clone());
    }
    *i.operations.entry(a.operation.clone()).or_default() += 1;
    i.requests += a.requests;
    i.bytes += a.bytes;
}

/// The words of an alert's summary that could be an account name or an address.
fn words_of(summary: &str) -> impl Iterator<Item = &str> {
    summary
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"' | '\''))
        .map(|w| w.trim_end_matches(['.', ':']))
        .filter(|w| !w.is_empty())
}
