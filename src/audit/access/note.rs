//! The request path's part: the gate reads what a request touches before forwarding it
//! ([`Pending::begin`]), and the access log's completion, which sees the status and the bytes
//! sent, hands it to the recorder ([`Pending::finish`]). Neither waits for anything.

use std::net::IpAddr;
use std::sync::Arc;

use time::OffsetDateTime;

use super::viewing::{Access, AccessSink, Msg};
use super::{Operation, Touch, url};

/// How long a deletion, a change or an export waits for the upstream to say whom it concerns
/// before it is forwarded (afterwards the data may be gone).
const LOOKUP_FIRST: std::time::Duration = std::time::Duration::from_secs(2);

/// In a destructive request's extensions: the proxy waits for it before forwarding.
#[derive(Debug, Clone)]
pub(crate) struct LookupFirst(Arc<tokio::sync::Notify>);

impl LookupFirst {
    /// Returns once the recorder knows whom the request concerns, or after [`LOOKUP_FIRST`].
    pub(crate) async fn wait(self) {
        let _ = tokio::time::timeout(LOOKUP_FIRST, self.0.notified()).await;
    }
}

/// A request to patient data, on its way.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    sink: AccessSink,
    user: Arc<str>,
    session: Arc<str>,
    client: IpAddr,
    touch: Touch,
    method: http::Method,
    path: Option<Box<str>>,
    request_id: Option<http::HeaderValue>,
}

impl Pending {
    /// What the request of `user` in `session` touches, or `None` when it is not patient data.
    /// For a deletion, a change or an export, also what the proxy waits for before forwarding
    /// it ([`LookupFirst`]).
    pub(crate) fn begin(
        sink: &AccessSink,
        (user, session): (&Arc<str>, &Arc<str>),
        client: IpAddr,
        method: &http::Method,
        uri: &http::Uri,
        request_id: Option<&http::HeaderValue>,
    ) -> Option<(Pending, Option<LookupFirst>)> {
        let touch = url::classify(method, uri.path(), uri.query())?;
        let first = matches!(
            touch.operation,
            Operation::Delete | Operation::Modify | Operation::Export
        )
        .then(|| {
            // Whom it concerns must be asked before the data is gone or changed.
            let done = Arc::new(tokio::sync::Notify::new());
            sink.send(Msg::Hint(touch.target.clone(), Some(done.clone())));
            LookupFirst(done)
        });
        let path = (!touch.operation.is_grouped()).then(|| Box::from(uri.path()));
        let pending = Pending {
            sink: sink.clone(),
            user: user.clone(),
            session: session.clone(),
            client,
            touch,
            method: method.clone(),
            path,
            request_id: request_id.cloned(),
        };
        Some((pending, first))
    }

    /// The response has ended (or the client left): recorded with its status and bytes.
    pub(crate) fn finish(self, status: u16, bytes: u64) {
        let Pending {
            sink,
            user,
            session,
            client,
            touch,
            method,
            path,
            request_id,
        } = self;
        sink.send(Msg::Access(Box::new(Access {
            at: OffsetDateTime::now_utc(),
            user,
            session,
            client,
            touch,
            method,
            path,
            request_id,
            status,
            bytes,
        })));
    }
}
