//! Property tests for the public parsers that decide security: path normalisation (and the path
//! the guard hands on), authority splitting, `next=` validation, the configuration loaders and
//! their units. Each property carries a one-line statement to check against the parser's own
//! documentation. Generators lean on the characters that make these parsers go wrong, not only
//! on random strings. `HeadScan` (private) has its properties in `src/conn/io.rs`.
//!
//! Case counts keep this file to a few seconds in a debug build; `PROPTEST_CASES=N` overrides
//! them all for a longer run. One file per parser; proptest keeps the failures it found per
//! file, in `tests/proptest-regressions/properties/`.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::{Request, Response, StatusCode, Uri};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config as ProptestConfig;
use tower::{Layer, Service};
use vigie::auth::routes::safe_next;
use vigie::body::Body;
use vigie::config::{Config, ConfigError, Severity, parse_duration, parse_size};
use vigie::conn::ClientForwarding;
use vigie::conn::{Activity, ConnInfo};
use vigie::http_util::authority::{request_host, split_authority};
use vigie::http_util::path::normalize;
use vigie::middleware::guard::GuardLayer;

mod authority;
mod config;
mod next;
mod paths;
mod units;

/// `cases` unless `PROPTEST_CASES` is set (for the occasional long run).
fn cases(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// Concatenations of `pieces`, and some plain random strings for good measure.
fn spelled(pieces: &'static [&'static str], max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::collection::vec(select(pieces), 0..max).prop_map(|v| v.concat()),
        1 => any::<String>(),
    ]
    .boxed()
}
