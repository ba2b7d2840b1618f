//! The typed events of the trail. Each names who acted; none carries a password, a token, a
//! cookie or image bytes. This step has the command line's changes; the gateway's sign-ins,
//! refusals and accesses to patient data follow (issue 10).

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
    /// `vigie rotate-keys`.
    KeysRotated {
        /// The new signing key's id.
        kid: String,
        end_all_sessions: bool,
        by: Operator,
    },
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
