//! The state every connection of a running gateway shares: configuration, metrics, the upstream
//! client, sign-in, the access policy, and the connection bounds. Built once by the listeners
//! (`crate::listen`) and handed to each connection's request stack as an `Arc`.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};

use crate::auth::Auth;
use crate::config::Config;
use crate::conn::per_client::PerClient;
use crate::metrics::Metrics;
use crate::policy::AccessRule;
use crate::proxy::Proxy;
use crate::proxy::limit::Slots;

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct GatewayState {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub proxy: Proxy,
    /// The bound on upstream connections, shared by the probe's and every worker's pool.
    pub upstream_slots: Slots,
    /// Set once shutdown begins: `/readyz` turns 503 so load balancers stop sending.
    pub draining: watch::Receiver<bool>,
    /// Client connections allowed at once, across all workers.
    pub connection_permits: Arc<Semaphore>,
    /// Client connections allowed at once per client address.
    pub per_client: Arc<PerClient>,
    pub auth: Arc<Auth>,
    /// The access policy, shared by every connection's gate.
    pub access: Option<Arc<[AccessRule]>>,
    /// The served certificate (none while the gateway obtains its first one).
    pub certs: Arc<crate::tls::CertStore>,
}
