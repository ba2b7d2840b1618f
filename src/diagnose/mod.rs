//! Diagnostics for the administrator: what `vigie check` looks at beyond the configuration file
//! itself ([`environment`]: the certificate on disk, the upstream, the ports). `vigie check
//! --exposure` (`crate::exposure`) is to join it here, one file per concern.

pub mod environment;

pub use environment::{CheckOptions, check_environment};
