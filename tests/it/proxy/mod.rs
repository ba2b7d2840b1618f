//! The proxy path end to end: a real upstream, the real gateway, real TLS clients. One file per
//! part of the path; the helpers two of them share are here.

use std::time::Duration;

use crate::support::*;
use futures_util::{SinkExt, StreamExt};

mod bodies;
mod connections;
mod headers;
mod own_answers;
mod upstream;

/// A body that sends `first`, then nothing, and never ends (until `tx` is dropped).
type Dribble = http_body_util::StreamBody<
    futures_util::stream::BoxStream<
        'static,
        Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>,
    >,
>;

fn dribble(first: &'static [u8]) -> (tokio::sync::mpsc::Sender<bytes::Bytes>, Dribble) {
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let stream = futures_util::stream::once(async move {
        Ok(hyper::body::Frame::data(bytes::Bytes::from_static(first)))
    })
    .chain(futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok(hyper::body::Frame::data(chunk)), rx))
    }));
    (tx, http_body_util::StreamBody::new(stream.boxed()))
}

/// An HTTP/2 connection to the gateway through hyper's own client.
async fn h2_client(
    certs: &Certs,
    gw: &Gw,
    window: Option<u32>,
) -> hyper::client::conn::http2::SendRequest<Dribble> {
    let tls = tls_connect(certs, gw.https, "viewer.test", &[b"h2"]).await;
    let mut b = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    if let Some(w) = window {
        b.initial_stream_window_size(w)
            .initial_connection_window_size(w);
    }
    let (send, conn) = b
        .handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

// ---- the gateway's cookies and headers belong to the gateway ------------------------------------
