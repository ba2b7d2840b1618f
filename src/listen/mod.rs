//! Listeners: binding everything before serving anything, the HTTPS accept loop with its
//! connection limits, the workers that serve the connections (`worker.rs`: handshake timeout,
//! HTTP, drain), the plain-HTTP listeners (`redirect`, `admin`), and graceful shutdown (stop
//! accepting, let in-flight requests finish up to `limits.drain_timeout`). Reloading is
//! `crate::reload`.
//!
//! HTTPS traffic runs on worker threads, one per core, each with its own single-threaded tokio
//! runtime and its own upstream connection pool. One accept loop hands each new connection to the
//! worker with the fewest open connections; the connection, its HTTP/2 streams and its upstream
//! requests then stay on that thread: no cross-thread wake-ups or work stealing on the request
//! path. (Letting every worker accept on the shared socket was measured to put a whole burst of
//! 20 or 50 new connections on one worker while the other idled.) The accept loop, the admin and
//! redirect listeners and the certificate reloader run on the caller's runtime.

mod admin;
mod certificate;
mod plain;
mod redirect;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn};

use crate::audit::access::resolve::Resolver;
use crate::audit::access::viewing::Viewings;
use crate::audit::{AuditError, AuditPaths, AuditWriter, WriterOptions, access};
use crate::config::{Config, ConfigError, Problem};
use crate::conn::per_client::PerClient;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::proxy::limit::Slots;
use crate::state::GatewayState;
use crate::tls;
use worker::{NewConn, WorkerHandle, start_workers};

/// How often ended sessions are removed and recorded.
const SESSION_SWEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// A gateway whose listeners are bound and whose certificate is loaded, ready to serve.
pub struct Gateway {
    shared: Arc<GatewayState>,
    /// Keeps a certificate the gateway obtains itself valid (the practice CA, ACME).
    renewer: Option<crate::tls::renew::Renewer>,
    /// ACME's http-01 answers, given by the plain-HTTP listener.
    challenges: Option<Arc<crate::tls::acme::Challenges>>,
    acceptor: TlsAcceptor,
    https: TcpListener,
    http: Option<TcpListener>,
    admin: Option<TcpListener>,
    drain_tx: watch::Sender<bool>,
    /// The audit trail's writer thread, finished after the drain.
    audit: AuditWriter,
    /// The recorder of accesses to patient data, finished after the drain, before the writer.
    viewings: Option<Viewings>,
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
        let (access_sink, access_rx) = match config.audit.record_access {
            true => {
                let (sink, rx) = access::viewing::channel();
                (Some(sink), Some(rx))
            }
            false => (None, None),
        };
        // The alerts watch what the trail's writer writes; they record in the trail in turn.
        let alerts = crate::alert::Alerts::start(&config);
        let (certs, renewer, challenges) = match certificate::open(&config, &alerts) {
            Ok(c) => (Some(c.store), c.renewer, c.challenges),
            Err(p) => {
                problems.push(p);
                (None, None, None)
            }
        };
        let observer: Arc<dyn crate::audit::Observer> = Arc::new(alerts.clone());
        let audit = match AuditWriter::start(
            &AuditPaths::of(&config),
            WriterOptions::of(&config),
            Some(observer),
        ) {
            Ok((mut auditor, writer)) => {
                if let Some(sink) = access_sink {
                    auditor.set_access(sink);
                }
                alerts.attach(auditor.clone());
                Some((auditor, writer))
            }
            Err(e) => {
                if matches!(e, AuditError::Broken(_)) {
                    alerts.chain_broken(&e).await;
                }
                let hint = match e {
                    AuditError::Broken(_) => {
                        "the trail is evidence: copy the audit directory aside as it is, then move it away (a new trail starts) and find out who could write there"
                    }
                    _ => {
                        "the gateway needs a private directory it can write for the trail (audit.dir, by default state_dir/audit) and for its key (state_dir); check the paths and their owner"
                    }
                };
                problems.push(Problem::error("audit.dir", e.to_string(), hint));
                None
            }
        };
        let auth = match &audit {
            Some((auditor, _)) => match crate::auth::Auth::open(&config, auditor.clone()) {
                Ok(a) => Some(Arc::new(a)),
                Err(e) => {
                    problems.push(Problem::error(
                        "state_dir",
                        e.to_string(),
                        "the gateway needs a private directory it can write (a Docker volume); check the path and its owner",
                    ));
                    None
                }
            },
            None => None,
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
        let (Some(certs), Some(https), Some(auth), Some((auditor, audit)), true) =
            (certs, https, auth, audit, problems.is_empty())
        else {
            return Err(ConfigError::Invalid(problems));
        };
        let server_config = tls::server_config(&config.tls, certs.clone())
            .map_err(|e| ConfigError::Invalid(vec![Problem::error("tls", e.to_string(), "")]))?;
        let metrics = Metrics::new();
        if let Some(c) = certs.current() {
            metrics.set_cert_expiry(c.info.not_after);
        }
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
        // The recorder asks the upstream whom the data belongs to, with a small pool of its own:
        // one idle connection per concurrent question (fewer opened 2,000 connections in 4 s
        // in the benchmark).
        let viewings = access_rx.map(|rx| {
            let resolver = Resolver::new(Proxy::new(
                &config.upstream,
                &config.limits,
                config.no_store,
                auth.clone(),
                upstream_slots.clone(),
                access::viewing::CONCURRENT_LOOKUPS,
            ));
            Viewings::spawn(rx, resolver, auditor, config.audit.viewing_idle)
        });
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
                certs,
            }),
            renewer,
            challenges,
            acceptor: TlsAcceptor::from(server_config),
            https,
            http,
            admin,
            drain_tx,
            audit,
            viewings,
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
            renewer,
            challenges,
            acceptor,
            https,
            http,
            admin,
            drain_tx,
            audit,
            viewings,
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
            tasks.spawn(redirect::serve(
                l,
                shared.clone(),
                challenges,
                stop_rx.clone(),
            ));
        }
        if let Some(l) = admin {
            tasks.spawn(admin::serve(l, shared.clone(), stop_rx.clone()));
        }
        let reloader = tokio::spawn(crate::reload::watch(shared.clone()));
        let renewal = renewer.map(|r| tokio::spawn(r.run()));
        shared.auth.oidc().warm_up();
        let sweeper = tokio::spawn({
            let auth = shared.auth.clone();
            async move {
                let mut every = tokio::time::interval(SESSION_SWEEP);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    auth.sweep_sessions();
                }
            }
        });

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
        sweeper.abort();
        if let Some(r) = renewal {
            r.abort();
        }
        // What is queued reaches the trail, sealed.
        if let Some(v) = viewings {
            v.finish().await;
        }
        let _ = tokio::task::spawn_blocking(move || audit.finish()).await;
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
