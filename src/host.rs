//! Facts about the machine the gateway runs on that several modules read: the wall clock as
//! Unix seconds, and whether this is a container. One place, so tests and checks agree.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now (0 if the clock is before 1970, which no check trusts anyway).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// [`unix_now`] as a signed number, for differences with dates that may be in the past.
pub(crate) fn unix_now_i64() -> i64 {
    i64::try_from(unix_now()).unwrap_or(i64::MAX)
}

/// Whether this process runs in a container (Docker's or Podman's marker file).
pub(crate) fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
}
