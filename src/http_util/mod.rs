//! HTTP helpers that know nothing of the gateway's layers: the request's host and its parsing
//! ([`authority`]), path normalisation ([`path`]), the gateway's reserved paths ([`reserved`])
//! and the one reader of comma-separated header lists ([`tokens`]). Leaves: they import no other
//! module of the crate.

pub mod authority;
pub mod path;
pub(crate) mod reserved;
pub(crate) mod tokens;
