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

/// How a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Method {
    PasswordTotp,
    /// `auth.second_factor: off`.
    Password,
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
