//! The HTTPS workers: one thread per core, each with its own single-threaded runtime, its own
//! upstream pool and its own copy of what a connection needs ([`Worker`]). The accept loop
//! (`super`) hands each new connection to the least-loaded worker; the connection, its HTTP/2
//! streams and its upstream requests then stay on that thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, warn};

use crate::config::Config;
use crate::conn::per_client::ClientSlot;
use crate::conn::{Activity, ClientForwarding, ConnInfo, ConnIo, ConnTimeouts};
use crate::proxy::Proxy;
use crate::stack;
use crate::state::GatewayState;

/// A new client connection on its way to a worker, with its place under `max_connections` and
/// under its client's `max_connections_per_client`.
pub(super) struct NewConn {
    pub(super) tcp: std::net::TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) permit: (OwnedSemaphorePermit, ClientSlot),
}

/// The accept loop's handle on one worker.
pub(super) struct WorkerHandle {
    pub(super) tx: mpsc::UnboundedSender<NewConn>,
    pub(super) open: Arc<AtomicUsize>,
}

/// Starts one worker thread per core (or `limits.worker_threads`). Returns the handles the
/// accept loop uses, and one channel per worker that reports whether it drained all its
/// connections before the deadline.
pub(super) fn start_workers(
    acceptor: TlsAcceptor,
    shared: &Arc<GatewayState>,
    stop: &watch::Receiver<bool>,
) -> (Vec<WorkerHandle>, Vec<tokio::sync::oneshot::Receiver<bool>>) {
    let count = match shared.config.limits.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut handles = Vec::with_capacity(count);
    let mut done = Vec::with_capacity(count);
    let share = shared.config.upstream.max_connections.div_ceil(count);
    for i in 0..count {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        let (acceptor, shared, stop) = (acceptor.clone(), shared.clone(), stop.clone());
        let worker_open = open.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("vigie-worker-{i}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let drained = match runtime {
                    Ok(rt) => {
                        rt.block_on(Worker::new(shared, acceptor, worker_open, share).run(rx, stop))
                    }
                    Err(e) => {
                        error!(error = %e, "cannot start a worker runtime");
                        false
                    }
                };
                let _ = done_tx.send(drained);
            });
        match spawned {
            Ok(_) => {
                handles.push(WorkerHandle { tx, open });
                done.push(done_rx);
            }
            Err(e) => error!(error = %e, "cannot start a worker thread"),
        }
    }
    (handles, done)
}

/// What every connection of one worker thread shares.
#[derive(Clone)]
struct Worker {
    shared: Arc<GatewayState>,
    acceptor: TlsAcceptor,
    /// This thread's upstream pool: its connections never leave the thread.
    proxy: Proxy,
    builder: Arc<auto::Builder<TokioExecutor>>,
    timeouts: ConnTimeouts,
    /// Connections this worker serves, read by the accept loop to pick the least loaded.
    open: Arc<AtomicUsize>,
}

impl Worker {
    /// `idle_share`: the idle upstream connections this worker's pool may keep. The bound on
    /// upstream connections is shared by all pools; each keeps idle at most its share, so that
    /// connections parked after a burst on one worker leave slots for the others.
    fn new(
        shared: Arc<GatewayState>,
        acceptor: TlsAcceptor,
        open: Arc<AtomicUsize>,
        idle_share: usize,
    ) -> Worker {
        let cfg = &shared.config;
        let proxy = Proxy::new(
            &cfg.upstream,
            &cfg.limits,
            cfg.no_store,
            shared.auth.clone(),
            shared.upstream_slots.clone(),
            cfg.upstream.pool_max_idle.min(idle_share),
        );
        let builder = Arc::new(http_builder(cfg));
        let timeouts = ConnTimeouts {
            header: cfg.limits.header_read_timeout,
            keepalive: cfg.limits.keepalive_timeout,
        };
        Worker {
            shared,
            acceptor,
            proxy,
            builder,
            timeouts,
            open,
        }
    }

    /// Serves the connections it is handed until told to stop, then drains them; true when all
    /// ended before `limits.drain_timeout`.
    async fn run(
        self,
        mut incoming: mpsc::UnboundedReceiver<NewConn>,
        mut stop: watch::Receiver<bool>,
    ) -> bool {
        let graceful = GracefulShutdown::new();
        loop {
            let conn = tokio::select! {
                c = incoming.recv() => match c { Some(c) => c, None => break },
                _ = stop.changed() => break,
            };
            let NewConn { tcp, peer, permit } = conn;
            let tcp = match tcp
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(tcp))
            {
                Ok(t) => t,
                Err(e) => {
                    warn!(error = %e, "cannot take over a new connection");
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
            };
            let worker = self.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _permit = permit;
                worker.shared.metrics.connection_opened();
                worker.serve(tcp, peer, watcher).await;
                worker.shared.metrics.connection_closed();
                worker.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
        // Connections handed over but not yet taken are closed with the channel.
        drop(incoming);
        tokio::time::timeout(self.shared.config.limits.drain_timeout, graceful.shutdown())
            .await
            .is_ok()
    }

    /// One client connection: TLS handshake, then HTTP until it ends, the drain asks it to, or
    /// the client stops reading for `limits.send_timeout`.
    async fn serve(&self, tcp: TcpStream, peer: SocketAddr, graceful: Watcher) {
        let _ = tcp.set_nodelay(true);
        let handshake = tokio::time::timeout(
            self.shared.config.limits.tls_handshake_timeout,
            self.acceptor.accept(tcp),
        );
        let tls = match handshake.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                self.shared.metrics.handshake_failed();
                debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                self.shared.metrics.handshake_failed();
                debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let (_, session) = tls.get_ref();
        if session.alpn_protocol() == Some(crate::tls::acme::ACME_TLS_ALPN) {
            // The ACME CA's tls-alpn-01 check: the handshake was the answer; no HTTP here.
            debug!(%peer, "ACME tls-alpn-01 check answered");
            return;
        }
        let sni_ok = session
            .server_name()
            .is_none_or(|name| self.shared.config.accepts_host(name));
        let h1 = session.alpn_protocol() != Some(b"h2");
        let activity = Arc::new(Activity::default());
        let conn = ConnInfo {
            peer,
            sni_ok,
            forwarded: Arc::new(ClientForwarding::new(peer)),
            activity: activity.clone(),
        };
        let io = ConnIo::new(tls, activity.clone(), self.timeouts, h1);
        let service =
            TowerToHyperService::new(stack::build(self.shared.clone(), self.proxy.clone(), conn));
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        tokio::select! {
            ended = graceful.watch(connection) => {
                if let Err(e) = ended {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            // Dropping the connection drops its responses, and with them the upstream requests.
            () = activity.stalled(self.shared.config.limits.send_timeout) => {
                self.shared.metrics.send_timed_out();
                debug!(%peer, reason = "send_timeout", "client stopped reading: connection closed");
            }
        }
    }
}

/// The hyper server settings shared by every HTTPS connection.
fn http_builder(cfg: &Config) -> auto::Builder<TokioExecutor> {
    let l = &cfg.limits;
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        // Header and idle timeouts are enforced by ConnIo, which can answer 408.
        .header_read_timeout(None)
        .max_headers(l.max_headers)
        // hyper answers 431 when a head does not fit in this buffer.
        .max_buf_size(l.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(l.h2_max_concurrent_streams)
        .max_header_list_size(l.max_header_bytes as u32)
        .max_pending_accept_reset_streams(Some(50))
        .max_local_error_reset_streams(Some(256))
        .initial_stream_window_size(Some(1 << 20))
        .initial_connection_window_size(Some(4 << 20))
        .max_send_buf_size(256 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    b
}
