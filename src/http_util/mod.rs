//! HTTP helpers that know nothing of the gateway's layers: the request's host and its parsing
//! ([`authority`]) and the gateway's reserved paths ([`reserved`]). Leaves: they import no other
//! module of the crate.

pub mod authority;
pub mod reserved;
