//! The typed events of the trail. Each names who acted; none carries a password, a token, a
//! cookie or image bytes. Here: the command line's changes and the gateway's sign-ins; refusals
//! and accesses to patient data follow (issue 10).

use serde::Serialize;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Event {
    /// `vigie user add`.
    AccountAdded {
        user: String,
        roles: Vec<String>,
        /// The file the account was written to.
        file: String,
        by: Operator,
    },
    /// A session opened.
    SignedIn {
        user: String,
        session: String,
        client: std::net::IpAddr,
        method: Method,
        /// The OpenID provider's name (`auth.oidc[].name`), for `method: oidc`.
        #[serde(skip_serializing_if = "Option::is_none")]
        provider: Option<String>,
    },
    /// A sign-in refused. `account` only when the name typed is an account (a mistyped name
    /// can be a password typed in the wrong field: it is never recorded).
    SignInRefused {
        account: Option<String>,
        client: std::net::IpAddr,
        reason: &'static str,
        failures: u32,
    },
    /// Failures reached `auth.max_failures`: the account or address is locked out.
    LockedOut {
        account: Option<String>,
        client: std::net::IpAddr,
        seconds: u64,
    },
    /// A user signed out.
    SignedOut {
        user: String,
        session: String,
        client: std::net::IpAddr,
    },
    /// A session ended by the administrator's change: its account removed or disabled.
    SessionRevoked {
        user: String,
        session: String,
        reason: &'static str,
    },
    /// The access policy refused a signed-in user (403). The path only: a query can carry
    /// patient identifiers that the policy did not let through.
    AccessRefused {
        user: String,
        session: String,
        client: std::net::IpAddr,
        method: String,
        path: String,
        request_id: Option<String>,
        reason: &'static str,
    },
    /// Accesses of one user, in one session, to one study (or one patient, when the URLs name
    /// no study), with one operation (view or download), grouped: a viewer fetches hundreds of
    /// images per study. The viewing closes after `audit.viewing_idle` without a request, when
    /// the session ends, or when the gateway stops. Nothing is lost: `requests` counts them.
    StudyAccess {
        user: String,
        session: String,
        client: std::net::IpAddr,
        operation: Operation,
        /// Who the data belongs to, as the upstream answered; `None` when it could not say.
        patient: Option<Patient>,
        study: Option<Study>,
        /// What the URLs named, when the upstream could not resolve it (and why).
        unresolved: Option<Unresolved>,
        /// RFC 3339, UTC: the first and the last request of the viewing.
        first: String,
        last: String,
        requests: u64,
        /// Requests the upstream answered with an error (status 400 or more).
        failed: u64,
        /// Response bytes sent to the client.
        bytes: u64,
        /// The request id of the first request (the access log has the rest).
        first_request: Option<String>,
    },
    /// One request that searched, stored, changed, deleted or sent data: each is its own record.
    DataAccess {
        user: String,
        session: String,
        client: std::net::IpAddr,
        operation: Operation,
        method: String,
        path: String,
        /// A search's criteria that name a patient or a study (`PatientID`, …), as given.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        criteria: Vec<(String, String)>,
        status: u16,
        bytes: u64,
        request_id: Option<String>,
        patient: Option<Patient>,
        study: Option<Study>,
        unresolved: Option<Unresolved>,
    },
    /// A session that reached its idle or absolute timeout (noticed within a minute).
    SessionExpired {
        user: String,
        session: String,
        /// `idle` or `absolute`.
        reason: &'static str,
    },
    /// An alert rule fired; `channels` names where it was delivered (or why not).
    AlertRaised {
        /// The rule's name (`failed_sign_ins`, `lockout`, `unusual_volume`, …).
        rule: String,
        severity: String,
        /// One line, in English, naming the account, address or count concerned.
        summary: String,
        /// Each channel's outcome: `email: sent`, `webhook: failed (…)`.
        channels: Vec<String>,
        /// Alerts of the same rule and subject held back since the last one (rate limit).
        suppressed: u64,
    },
    /// Records older than `audit.retention` deleted: the files and the sequence numbers they
    /// held. The chain carries on; `verify` starts from the first file kept.
    TrailPruned {
        files: Vec<String>,
        first_seq: u64,
        last_seq: u64,
        /// The hash of the last deleted line: the first kept line names it as `prev`.
        last_hash: String,
    },
    /// Requests the session gate refused (no session, or a session cookie that is not valid),
    /// counted per client address and reason: a scanner's thousands of probes make one record,
    /// closed after `audit.viewing_idle` without another, or when the gateway stops.
    GateRefusals {
        client: std::net::IpAddr,
        /// `no_session`, `session_invalid` or `session_expired`.
        reason: &'static str,
        first: String,
        last: String,
        requests: u64,
        /// The first path refused (never a query).
        first_path: String,
    },
    /// At start-up, the last line of the trail was found cut short (a crash during its write)
    /// and removed.
    TornLineRemoved { file: String, bytes: u64 },
    /// `vigie rotate-keys`.
    KeysRotated {
        /// The new signing key's id.
        kid: String,
        end_all_sessions: bool,
        by: Operator,
    },
}

/// What a request does to the data it touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Operation {
    /// Reading images, metadata or a study's pages in a viewer.
    View,
    /// A query that lists patients or studies (QIDO-RS, `/tools/find`, the lists of Orthanc's
    /// explorer).
    Search,
    /// A file leaves as a file: DICOM instance, ZIP archive, DICOMDIR media, WADO-URI
    /// `application/dicom`.
    Download,
    /// New data stored (REST upload, STOW-RS).
    Upload,
    /// Data changed (`modify`, `anonymize`, metadata, labels, attachments).
    Modify,
    /// Data deleted.
    Delete,
    /// Data sent elsewhere (DICOM C-STORE to a modality or peer, DICOMweb STOW to a server,
    /// transfers).
    Export,
}

impl Operation {
    /// Operations recorded one viewing per study (grouped), not one record per request.
    pub(crate) fn is_grouped(self) -> bool {
        matches!(self, Operation::View | Operation::Download)
    }
}

/// A patient, as the upstream names them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct Patient {
    /// DICOM PatientID (0010,0020).
    pub(crate) id: String,
    /// DICOM PatientName (0010,0010), `^` between its parts as stored.
    pub(crate) name: Option<String>,
    /// The upstream's own identifier (Orthanc), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_id: Option<String>,
}

/// A study, as the upstream describes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct Study {
    /// StudyInstanceUID (0020,000D).
    pub(crate) uid: String,
    /// StudyDate (0008,0020), `YYYYMMDD` as stored.
    pub(crate) date: Option<String>,
    pub(crate) description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_id: Option<String>,
}

/// What could not be resolved to a patient: the resource as the URL named it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub(crate) struct Unresolved {
    /// `orthanc instance <id>`, `dicom study <uid>`, …
    pub(crate) resource: String,
    pub(crate) why: String,
}

/// How a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Method {
    PasswordTotp,
    /// `auth.second_factor: off`.
    Password,
    /// Through an OpenID Connect provider (Pro Santé Connect or another).
    Oidc,
}

/// Who ran a command: the operating-system account (the gateway has no session there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Operator {
    pub(crate) command_line: bool,
    /// `$USER` or `$LOGNAME`, when set.
    pub(crate) os_user: Option<String>,
}

impl Operator {
    /// The person at this command line.
    pub(crate) fn here() -> Operator {
        Operator {
            command_line: true,
            os_user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty()),
        }
    }
}
