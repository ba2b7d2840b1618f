//! Listeners and connections: binding everything before serving anything, the HTTPS accept loop
//! with its connection limit and handshake timeout, certificate reloading, and graceful
//! shutdown (stop accepting, let in-flight requests finish up to `limits.drain_timeout`).
//!
//! HTTPS traffic runs on worker threads, one per core, each with its own single-threaded tokio
//! runtime and its own upstream connection pool. One accept loop hands each new connection to the
//! worker with the fewest open connections; the connection, its HTTP/2 streams and its upstream
//! requests then stay on that thread: no cross-thread wake-ups or work stealing on the request
//! path. (Letting every worker accept on the shared socket was measured to put a whole burst of
//! 20 or 50 new connections on one worker while the other idled.) The accept loop, the admin and
//! redirect listeners and the certificate reloader run on the caller's runtime.

mod admin;
mod plain;
mod redirect;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::config::{Config, ConfigError, Problem};
use crate::conn::per_client::{ClientSlot, PerClient};
use crate::conn::{Activity, ConnInfo, ConnIo, ConnTimeouts};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::proxy::limit::Slots;
use crate::stack;
use crate::state::GatewayState;
use crate::tls::{self, CertStore};

/// A gateway whose listeners are bound and whose certificate is loaded, ready to serve.
pub struct Gateway {
    shared: Arc<GatewayState>,
    certs: Arc<CertStore>,
    acceptor: TlsAcceptor,
    https: TcpListener,
    http: Option<TcpListener>,
    admin: Option<TcpListener>,
    drain_tx: watch::Sender<bool>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("https", &self.https.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Binds and serves until `shutdown` resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ConfigError> {
    Gateway::bind(config).await?.serve(shutdown).await;
    Ok(())
}

impl Gateway {
    /// Loads the certificate and binds every listener; nothing is served yet, so a failure here
    /// leaves nothing half-started.
    pub async fn bind(config: Config) -> Result<Gateway, ConfigError> {
        let mut problems = Vec::new();
        let certs = match CertStore::open(&config.tls.cert_file, &config.tls.key_file) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                problems.push(crate::diagnose::environment::cert_problem(&e, &config.tls));
                None
            }
        };
        let auth = match crate::auth::Auth::open(&config) {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                problems.push(Problem::error(
                    "state_dir",
                    e.to_string(),
                    "the gateway needs a private directory it can write (a Docker volume); check the path and its owner",
                ));
                None
            }
        };
        let https = bind(config.listen.https, "listen.https", &mut problems).await;
        let http = match config.listen.http {
            Some(a) => bind(a, "listen.http", &mut problems).await,
            None => None,
        };
        let admin = match config.listen.admin {
            Some(a) => bind(a, "listen.admin", &mut problems).await,
            None => None,
        };
        let (Some(certs), Some(https), Some(auth), true) =
            (certs, https, auth, problems.is_empty())
        else {
            return Err(ConfigError::Invalid(problems));
        };
        let server_config = tls::server_config(&config.tls, certs.clone())
            .map_err(|e| ConfigError::Invalid(vec![Problem::error("tls", e.to_string(), "")]))?;
        let metrics = Metrics::new();
        metrics.set_cert_expiry(certs.current().info.not_after);
        let upstream_slots = Slots::new(
            config.upstream.max_connections,
            config.upstream.queue_timeout,
            metrics.clone(),
        );
        // The health probe's client keeps no idle connection: one would hold a slot of
        // upstream.max_connections between probes.
        let proxy = Proxy::new(
            &config.upstream,
            &config.limits,
            config.no_store,
            auth.clone(),
            upstream_slots.clone(),
            0,
        );
        let (drain_tx, draining) = watch::channel(false);
        let connection_permits = Arc::new(Semaphore::new(config.limits.max_connections));
        let per_client = PerClient::new(config.limits.max_connections_per_client);
        let access = config.access.clone().map(Arc::from);
        Ok(Gateway {
            shared: Arc::new(GatewayState {
                config: Arc::new(config),
                metrics,
                proxy,
                upstream_slots,
                draining,
                connection_permits,
                per_client,
                auth,
                access,
            }),
            certs,
            acceptor: TlsAcceptor::from(server_config),
            https,
            http,
            admin,
            drain_tx,
        })
    }

    /// The bound HTTPS address (useful when the configuration asked for port 0).
    pub fn https_addr(&self) -> SocketAddr {
        local(&self.https)
    }

    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().map(local)
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(local)
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains open connections for
    /// at most `limits.drain_timeout`.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Gateway {
            shared,
            certs,
            acceptor,
            https,
            http,
            admin,
            drain_tx,
        } = self;
        let cfg = &shared.config;
        info!(
            https = %local(&https),
            http = %http.as_ref().map_or_else(|| "-".into(), |l| local(l).to_string()),
            admin = %admin.as_ref().map_or_else(|| "-".into(), |l| local(l).to_string()),
            upstream = %cfg.upstream.url,
            server_name = %cfg.server_name,
            "vigie listening"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let (workers, done) = start_workers(acceptor, &shared, &stop_rx);
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(accept_https(
            https,
            workers,
            shared.clone(),
            stop_rx.clone(),
        ));
        if let Some(l) = http {
            tasks.spawn(redirect::serve(l, shared.clone(), stop_rx.clone()));
        }
        if let Some(l) = admin {
            tasks.spawn(admin::serve(l, shared.clone(), stop_rx.clone()));
        }
        let reloader = tokio::spawn(crate::reload::watch(certs, shared.clone()));

        shutdown.await;
        info!("shutting down: no new connections, draining open ones");
        let _ = drain_tx.send(true);
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        // Each worker stops accepting, drains its connections up to the deadline, and reports.
        let mut drained = true;
        for done in done {
            drained &= done.await.unwrap_or(false);
        }
        if drained {
            info!("all connections drained");
        } else {
            warn!(
                deadline_s = shared.config.limits.drain_timeout.as_secs(),
                "drain deadline reached; closed the remaining connections"
            );
        }
        reloader.abort();
    }
}

fn local(l: &TcpListener) -> SocketAddr {
    l.local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

async fn bind(addr: SocketAddr, path: &str, problems: &mut Vec<Problem>) -> Option<TcpListener> {
    let result = (|| {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // Lets a restarted gateway bind while old connections sit in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        socket.listen(1024)
    })();
    match result {
        Ok(l) => Some(l),
        Err(e) => {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "another program already uses this port: stop it or pick another port"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "ports below 1024 need privileges: use e.g. 8443 and forward 443 to it"
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "this machine has no such address: use 0.0.0.0 or one of its own addresses"
                }
                _ => "check the address",
            };
            problems.push(Problem::error(
                path,
                format!("cannot listen on {addr}: {e}"),
                hint,
            ));
            None
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

/// A new client connection on its way to a worker, with its place under `max_connections` and
/// under its client's `max_connections_per_client`.
struct NewConn {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    permit: (OwnedSemaphorePermit, ClientSlot),
}

/// The accept loop's handle on one worker.
struct WorkerHandle {
    tx: mpsc::UnboundedSender<NewConn>,
    open: Arc<AtomicUsize>,
}

/// Accepts HTTPS connections and gives each to the least-loaded worker.
async fn accept_https(
    listener: TcpListener,
    workers: Vec<WorkerHandle>,
    shared: Arc<GatewayState>,
    mut stop: watch::Receiver<bool>,
) {
    if workers.is_empty() {
        error!("no HTTPS worker is running");
        return;
    }
    loop {
        // Waiting for a permit before accepting leaves excess clients in the kernel's backlog
        // instead of spending memory on them.
        let permit = tokio::select! {
            p = shared.connection_permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // One client may not take every place: beyond its share its new connections are
        // closed at once (and give their place back).
        let Some(slot) = shared.per_client.admit(peer.ip()) else {
            shared.metrics.client_over_cap();
            debug!(%peer, reason = "max_connections_per_client", "connection refused");
            continue;
        };
        let permit = (permit, slot);
        let Ok(tcp) = tcp.into_std() else { continue };
        let worker = workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .unwrap_or(&workers[0]);
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.tx.send(NewConn { tcp, peer, permit }).is_err() {
            worker.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Starts one worker thread per core (or `limits.worker_threads`). Returns the handles the
/// accept loop uses, and one channel per worker that reports whether it drained all its
/// connections before the deadline.
fn start_workers(
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
                    Ok(rt) => rt.block_on(worker(rx, worker_open, acceptor, shared, stop, share)),
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

/// One worker: serves the connections it is handed until told to stop, then drains them.
async fn worker(
    mut incoming: mpsc::UnboundedReceiver<NewConn>,
    open: Arc<AtomicUsize>,
    acceptor: TlsAcceptor,
    shared: Arc<GatewayState>,
    mut stop: watch::Receiver<bool>,
    idle_share: usize,
) -> bool {
    let cfg = &shared.config;
    // Each worker has its own upstream pool: its connections never leave its thread. The bound
    // on their number is shared by all pools; each keeps idle at most its share of the bound, so
    // that connections parked after a burst on one worker leave slots for the others.
    let proxy = Proxy::new(
        &cfg.upstream,
        &cfg.limits,
        cfg.no_store,
        shared.auth.clone(),
        shared.upstream_slots.clone(),
        cfg.upstream.pool_max_idle.min(idle_share),
    );
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(http_builder(cfg));
    let timeouts = ConnTimeouts {
        header: cfg.limits.header_read_timeout,
        keepalive: cfg.limits.keepalive_timeout,
    };
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
                open.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
        };
        let (shared, acceptor, builder) = (shared.clone(), acceptor.clone(), builder.clone());
        let (proxy, open) = (proxy.clone(), open.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            shared.metrics.connection_opened();
            serve_connection(
                tcp, peer, acceptor, &shared, proxy, &builder, watcher, timeouts,
            )
            .await;
            shared.metrics.connection_closed();
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Connections handed over but not yet taken are closed with the channel.
    drop(incoming);
    tokio::time::timeout(cfg.limits.drain_timeout, graceful.shutdown())
        .await
        .is_ok()
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: &Arc<GatewayState>,
    proxy: Proxy,
    builder: &auto::Builder<TokioExecutor>,
    graceful: hyper_util::server::graceful::Watcher,
    timeouts: ConnTimeouts,
) {
    let _ = tcp.set_nodelay(true);
    let handshake = tokio::time::timeout(
        shared.config.limits.tls_handshake_timeout,
        acceptor.accept(tcp),
    );
    let tls = match handshake.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            shared.metrics.handshake_failed();
            debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.handshake_failed();
            debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let (_, session) = tls.get_ref();
    let sni_ok = session
        .server_name()
        .is_none_or(|name| shared.config.accepts_host(name));
    let h1 = session.alpn_protocol() != Some(b"h2");
    let activity = Arc::new(Activity::default());
    let conn = ConnInfo {
        peer,
        sni_ok,
        forwarded: Arc::new(crate::conn::ClientForwarding::new(peer)),
        activity: activity.clone(),
    };
    let io = ConnIo::new(tls, activity.clone(), timeouts, h1);
    let service = TowerToHyperService::new(stack::build(shared.clone(), proxy, conn));
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    tokio::select! {
        ended = graceful.watch(connection) => {
            if let Err(e) = ended {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        // Dropping the connection drops its responses, and with them the upstream requests.
        () = activity.stalled(shared.config.limits.send_timeout) => {
            shared.metrics.send_timed_out();
            debug!(%peer, reason = "send_timeout", "client stopped reading: connection closed");
        }
    }
}
