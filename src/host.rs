//! Facts about the machine the gateway runs on that several modules read: the wall clock as
//! Unix seconds, and whether this is a container. One place, so tests and checks agree.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The wall clock as time since 1970, to the nanosecond (zero if the clock is before 1970, which
/// no check trusts anyway).
pub(crate) fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    since_epoch().as_secs()
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
