//! Each rule's windows and thresholds, with the time given (no sleeping).

use std::net::IpAddr;

use time::OffsetDateTime;

use super::*;
use crate::audit::Method;
use crate::config::WorkingHours;

fn t(s: i64) -> OffsetDateTime {
    // Wednesday 2026-01-14 10:00:00 UTC, plus `s` seconds.
    OffsetDateTime::from_unix_timestamp(1_768_384_800 + s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn refused(account: Option<&str>, client: &str) -> Event {
    Event::SignInRefused {
        account: account.map(String::from),
        client: ip(client),
        reason: "bad_password",
        failures: 1,
    }
}

fn rules(s: AlertSettings) -> Rules {
    Rules::new(&s, Seen::memory())
}

fn names(alerts: &[Alert]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| format!("{} {}", a.rule(), a.subject()))
        .collect()
}

#[test]
fn failed_sign_ins_per_account_per_address_and_overall_within_the_window() {
    let mut r = rules(AlertSettings::default());
    let acct = Some("dr.martin");
    assert!(r.observe(t(0), &refused(acct, "192.0.2.1")).is_empty());
    assert!(r.observe(t(60), &refused(acct, "192.0.2.2")).is_empty());
    // The third within 10 minutes: the account's threshold (3).
    let a = r.observe(t(120), &refused(acct, "192.0.2.3"));
    assert_eq!(names(&a), ["failed_sign_ins account dr.martin"]);
    assert!(matches!(a[0].facts, Facts::FailedSignIns { count: 3, .. }));
    // The first two are out of the window 10 minutes later: 2 again, no alert.
    assert!(
        r.observe(t(600 + 61), &refused(acct, "192.0.2.4"))
            .is_empty()
    );

    // Per address: 5 from one address, for names that are not accounts.
    let mut r = rules(AlertSettings::default());
    for i in 0..4 {
        assert!(r.observe(t(i), &refused(None, "198.51.100.7")).is_empty());
    }
    let a = r.observe(t(5), &refused(None, "198.51.100.7"));
    assert_eq!(names(&a), ["failed_sign_ins address 198.51.100.7"]);

    // Overall: 20 from everywhere, none reaching the other thresholds.
    let mut r = rules(AlertSettings::default());
    for i in 0..19u8 {
        let client = format!("203.0.113.{i}");
        assert!(r.observe(t(i.into()), &refused(None, &client)).is_empty());
    }
    let a = r.observe(t(30), &refused(None, "203.0.113.200"));
    assert_eq!(names(&a), ["failed_sign_ins all"]);
    assert_eq!(a[0].severity, Severity::Critical);
}

#[test]
fn thresholds_are_tunable_and_zero_is_off() {
    let mut s = AlertSettings::default();
    s.failed_sign_ins.per_account = 0;
    s.failed_sign_ins.per_address = 2;
    let mut r = rules(s);
    assert!(r.observe(t(0), &refused(Some("a"), "192.0.2.1")).is_empty());
    let a = r.observe(t(1), &refused(Some("a"), "192.0.2.1"));
    assert_eq!(names(&a), ["failed_sign_ins address 192.0.2.1"]);
}

#[test]
fn lockouts_alert_unless_turned_off() {
    let lock = Event::LockedOut {
        account: Some("dr.martin".into()),
        client: ip("192.0.2.1"),
        seconds: 900,
    };
    let a = rules(AlertSettings::default()).observe(t(0), &lock);
    assert_eq!(names(&a), ["lockout account dr.martin"]);
    let off = AlertSettings {
        lockout: false,
        ..AlertSettings::default()
    };
    assert!(rules(off).observe(t(0), &lock).is_empty());
}

fn signed_in(user: &str, client: &str) -> Event {
    Event::SignedIn {
        user: user.into(),
        session: "s1".into(),
        client: ip(client),
        provider: None,
        method: Method::PasswordTotp,
    }
}

#[test]
fn a_sign_in_from_a_new_address_once_the_user_has_history() {
    let mut r = rules(AlertSettings::default());
    assert!(
        r.observe(t(0), &signed_in("dr.martin", "192.0.2.1"))
            .is_empty()
    );
    assert!(
        r.observe(t(1), &signed_in("dr.martin", "192.0.2.1"))
            .is_empty()
    );
    let a = r.observe(t(2), &signed_in("dr.martin", "198.51.100.2"));
    assert_eq!(names(&a), ["new_address user dr.martin from 198.51.100.2"]);
    // Another user's first sign-in from there is not new for them: they have no history.
    assert!(
        r.observe(t(3), &signed_in("dr.durand", "198.51.100.2"))
            .is_empty()
    );
}

fn viewed(user: &str, study: &str, patient: &str, operation: Operation) -> Event {
    use crate::audit::{Patient, Study};
    Event::StudyAccess {
        user: user.into(),
        session: "s1".into(),
        client: ip("192.0.2.1"),
        operation,
        patient: Some(Patient {
            id: patient.into(),
            name: None,
            upstream_id: None,
        }),
        study: Some(Study {
            uid: study.into(),
            date: None,
            description: None,
            upstream_id: None,
        }),
        unresolved: None,
        first: String::new(),
        last: String::new(),
        requests: 10,
        failed: 0,
        bytes: 5_000_000,
        first_request: None,
    }
}

#[test]
fn volume_counts_distinct_studies_and_patients_per_user_within_the_window() {
    let mut s = AlertSettings::default();
    s.volume.studies = 5;
    s.volume.patients = 4;
    let mut r = rules(s);
    // The same study ten times is one study.
    for i in 0..10 {
        let e = viewed("dr.martin", "1.2.3", "P1", Operation::View);
        assert!(r.observe(t(i), &e).is_empty());
    }
    // Three more patients' studies: 4 patients → alert on patients only.
    for (i, p) in ["P2", "P3"].iter().enumerate() {
        let e = viewed("dr.martin", &format!("1.2.{i}"), p, Operation::View);
        assert!(r.observe(t(20), &e).is_empty());
    }
    let a = r.observe(t(30), &viewed("dr.martin", "1.2.9", "P4", Operation::View));
    assert_eq!(names(&a), ["volume user dr.martin patients"]);
    // A fifth study of a known patient: studies now reach 5.
    let a = r.observe(t(40), &viewed("dr.martin", "1.2.10", "P1", Operation::View));
    assert_eq!(
        names(&a),
        [
            "volume user dr.martin studies",
            "volume user dr.martin patients"
        ]
    );
    // Another user is counted apart.
    assert!(
        r.observe(t(41), &viewed("dr.durand", "1.2.10", "P1", Operation::View))
            .is_empty()
    );
    // An hour later the window is empty again.
    assert!(
        r.observe(t(3700), &viewed("dr.martin", "9.9", "P9", Operation::View))
            .is_empty()
    );
}

#[test]
fn downloads_alert_and_never_name_the_patient() {
    let mut r = rules(AlertSettings::default());
    let a = r.observe(
        t(0),
        &viewed("dr.martin", "1.2.3", "P1", Operation::Download),
    );
    assert_eq!(names(&a), ["download user dr.martin"]);
    let text = a[0].facts.headline(crate::lang::Lang::En);
    assert!(text.contains("5.0 MB"), "{text}");
    assert!(!text.contains("P1") && !text.contains("1.2.3"), "{text}");
}

#[test]
fn activity_outside_working_hours() {
    let s = AlertSettings {
        off_hours: Some(WorkingHours {
            start: 7 * 60,
            end: 20 * 60,
            days: [true, true, true, true, true, true, false],
            time_zone: "Europe/Paris".into(),
            zone: jiff::tz::TimeZone::get("Europe/Paris").unwrap(),
        }),
        ..AlertSettings::default()
    };
    let mut r = rules(s);
    // 10:00 UTC is 11:00 in Paris on a Wednesday: fine.
    assert!(
        r.observe(t(0), &signed_in("dr.martin", "192.0.2.1"))
            .is_empty()
    );
    // 22:00 UTC is 23:00 in Paris.
    let a = r.observe(t(12 * 3600), &signed_in("dr.martin", "192.0.2.1"));
    assert_eq!(names(&a), ["off_hours user dr.martin"]);
    let text = a[0].facts.headline(crate::lang::Lang::En);
    assert!(text.contains("2026-01-14 23:00 Europe/Paris"), "{text}");
    // Off by default.
    let mut r = rules(AlertSettings::default());
    assert!(
        r.observe(t(12 * 3600), &signed_in("x", "192.0.2.1"))
            .is_empty()
    );
}

#[test]
fn alerts_never_feed_the_rules() {
    let mut r = rules(AlertSettings::default());
    let e = Event::AlertRaised {
        rule: "lockout".into(),
        severity: "high".into(),
        summary: String::new(),
        channels: vec![],
        suppressed: 0,
    };
    for i in 0..100 {
        assert!(r.observe(t(i), &e).is_empty());
    }
}
