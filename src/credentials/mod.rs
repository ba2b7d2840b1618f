//! Credentials as data: argon2id password hashes (hashing, verifying, checking a stored hash's
//! parameters, refusing weak and common passwords) and TOTP secrets (decoding, generating, codes).
//! Leaves used both by sign-in (`crate::auth`) and by configuration checks (`crate::config`).

pub mod password;
pub mod totp;
