//! The trail's events as the reports read them back: the fields the reports use, mirrored from
//! `audit/event.rs` (which only serialises, with `&'static str`s). A type this version does not
//! know is read as [`Ev::Other`] and counted; a known type with missing fields is unreadable and
//! counted too. Unknown fields are ignored, so older reports read newer trails.

use serde::{Deserialize, Serialize};

/// One event, as read.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Ev {
    SignedIn {
        user: String,
        client: String,
    },
    SignInRefused {
        account: Option<String>,
        client: String,
        reason: String,
        #[serde(default)]
        failures: u32,
    },
    LockedOut {
        account: Option<String>,
        client: String,
        #[serde(default)]
        seconds: u64,
    },
    SignedOut {},
    SessionRevoked {
        user: String,
        reason: String,
    },
    SessionExpired {},
    GateRefusals {},
    AccessRefused {
        user: String,
        client: String,
        method: String,
        path: String,
        request_id: Option<String>,
        reason: String,
    },
    StudyAccess {
        user: String,
        session: String,
        client: String,
        operation: String,
        patient: Option<Patient>,
        study: Option<Study>,
        unresolved: Option<Unresolved>,
        first: String,
        last: String,
        requests: u64,
        #[serde(default)]
        failed: u64,
        #[serde(default)]
        bytes: u64,
        first_request: Option<String>,
    },
    DataAccess {
        user: String,
        session: String,
        client: String,
        operation: String,
        method: String,
        path: String,
        #[serde(default)]
        criteria: Vec<(String, String)>,
        status: u16,
        #[serde(default)]
        bytes: u64,
        request_id: Option<String>,
        patient: Option<Patient>,
        study: Option<Study>,
        unresolved: Option<Unresolved>,
    },
    AlertRaised {
        rule: String,
        severity: String,
        summary: String,
        #[serde(default)]
        channels: Vec<String>,
        #[serde(default)]
        suppressed: u64,
    },
    AccountAdded {},
    KeysRotated {
        #[serde(default)]
        end_all_sessions: bool,
    },
    TrailPruned {},
    TornLineRemoved {},
    /// A type this version does not know.
    #[serde(other)]
    Other,
}

/// A patient, as the upstream named them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
pub(crate) struct Patient {
    /// DICOM PatientID.
    pub(crate) id: String,
    /// DICOM PatientName, `^` between its parts as stored.
    pub(crate) name: Option<String>,
    /// The upstream's own identifier (Orthanc).
    pub(crate) upstream_id: Option<String>,
}

/// A study, as the upstream described it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
pub(crate) struct Study {
    /// StudyInstanceUID.
    pub(crate) uid: String,
    /// StudyDate, `YYYYMMDD` as stored.
    pub(crate) date: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) upstream_id: Option<String>,
}

/// What the URLs named when the upstream could not resolve it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub(crate) struct Unresolved {
    pub(crate) resource: String,
    pub(crate) why: String,
}
