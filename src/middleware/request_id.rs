//! Gives every request an id, unique in this process and unpredictable enough not to collide
//! across restarts. It is logged with the request, sent to the upstream and returned to the
//! client in `X-Request-Id`, so a doctor's "it failed at 10:42" can be traced. A client's own
//! `X-Request-Id` is never trusted.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::{MapResponse, ResponseMapper};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request extensions.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub HeaderValue);

static SEED: LazyLock<u64> = LazyLock::new(|| {
    let mut b = [0u8; 8];
    // Without randomness ids are still unique within the process.
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
});
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_id() -> HeaderValue {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // A bijective mix of the counter: ids never repeat and do not reveal the request count.
    let mut x = n.wrapping_add(*SEED);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let mut buf = [0u8; 16];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in buf.iter_mut().enumerate() {
        *b = HEX[((x >> (60 - 4 * i)) & 0xf) as usize];
    }
    let mut v = HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("0"));
    // Unique per response: HPACK must not add it to HTTP/2's header table (never-indexed).
    v.set_sensitive(true);
    v
}

/// Adds [`RequestId`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RequestIdService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = MapResponse<S::Future, SetId>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = next_id();
        req.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
        req.extensions_mut().insert(RequestId(id.clone()));
        MapResponse::new(self.inner.call(req), SetId(id))
    }
}

pub(crate) struct SetId(HeaderValue);

impl<B> ResponseMapper<B> for SetId {
    type Output = Response<B>;
    fn map(self, mut res: Response<B>) -> Response<B> {
        res.headers_mut().insert(X_REQUEST_ID.clone(), self.0);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_hex() {
        let ids: std::collections::HashSet<_> = (0..10_000).map(|_| next_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter().all(
                |v| v.len() == 16 && v.to_str().unwrap().bytes().all(|b| b.is_ascii_hexdigit())
            )
        );
    }
}
