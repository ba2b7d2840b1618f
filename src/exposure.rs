//! `vigie check --exposure`: looks at a running deployment from the inside and says, in plain
//! French or English, whether it repeats the mistakes the CNIL fined in December 2020 (a viewer
//! reachable from the internet, without a password, without encryption).
//!
//! Each check yields one or more [`Finding`]s: a level, what was seen, and one sentence saying
//! what to change. The checks only read: a TLS handshake with the gateway itself, plain GETs to
//! the upstream (without and with Vigie's credentials), TCP connections to the viewer's usual
//! ports on this machine's own network addresses, and the configuration.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use tokio::net::TcpStream;

use crate::config::{Config, TlsMinVersion};
use crate::tls;

/// The language of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    /// French when the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`, first one set) says so.
    pub fn from_env() -> Lang {
        for var in ["LC_ALL", "LC_MESSAGES", "LANG"] {
            if let Ok(v) = std::env::var(var)
                && !v.is_empty()
            {
                return if v.to_ascii_lowercase().starts_with("fr") {
                    Lang::Fr
                } else {
                    Lang::En
                };
            }
        }
        Lang::En
    }
}

/// How serious a finding is. `High` and `Critical` make the command exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warning,
    High,
    Critical,
}

impl Level {
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Level::Ok, _) => "OK",
            (Level::Info, _) => "INFO",
            (Level::Warning, Lang::En) => "WARNING",
            (Level::Warning, Lang::Fr) => "ATTENTION",
            (Level::High, Lang::En) => "HIGH",
            (Level::High, Lang::Fr) => "GRAVE",
            (Level::Critical, Lang::En) => "CRITICAL",
            (Level::Critical, Lang::Fr) => "CRITIQUE",
        }
    }
}

/// What a check found, in the report's language.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// Stable identifier of the check (`certificate`, `tls`, `upstream_address`,
    /// `upstream_credentials`, `second_factor`, `accounts`, `policy`, `viewer_ports`,
    /// `gateway`, `plain_http`, `admin_listener`).
    pub check: &'static str,
    pub message: String,
    /// What to change; empty when there is nothing to do.
    pub fix: String,
}

/// Options of the inspection.
#[derive(Debug, Clone)]
pub struct Options {
    pub lang: Lang,
    /// Timeout of each connection attempt.
    pub timeout: Duration,
    /// The viewer's usual ports, probed on this machine's addresses (the upstream's own port is
    /// added).
    pub viewer_ports: Vec<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lang: Lang::from_env(),
            timeout: Duration::from_secs(2),
            viewer_ports: vec![8042, 4242],
        }
    }
}

struct Report {
    lang: Lang,
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, level: Level, check: &'static str, msg: (String, String), fix: (&str, &str)) {
        let (message, fix) = match self.lang {
            Lang::Fr => (msg.0, fix.0.to_string()),
            Lang::En => (msg.1, fix.1.to_string()),
        };
        self.findings.push(Finding {
            level,
            check,
            message,
            fix,
        });
    }
}

/// Both languages of a message, formatted in place.
macro_rules! say {
    ($fr:expr, $en:expr $(,)?) => {
        (format!($fr), format!($en))
    };
}

/// Runs every check against `config` and the deployment it describes.
pub async fn inspect(config: &Config, opts: &Options) -> Vec<Finding> {
    let mut r = Report {
        lang: opts.lang,
        findings: Vec::new(),
    };
    let served = gateway_tls(config, opts, &mut r).await;
    certificate(config, served.as_deref(), &mut r);
    upstream_address(config, &mut r).await;
    upstream_credentials(config, opts, &mut r).await;
    second_factor(config, &mut r);
    policy(config, &mut r);
    viewer_ports(config, opts, &mut r).await;
    plain_http(config, opts, &mut r).await;
    admin_listener(config, &mut r);
    r.findings
}

/// Exit status for a set of findings: 1 high or critical, 3 warnings only, 0 otherwise.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.level).max() {
        Some(Level::High | Level::Critical) => 1,
        Some(Level::Warning) => 3,
        _ => 0,
    }
}

/// The report as text, one finding per paragraph, most serious first.
pub fn render(findings: &[Finding], lang: Lang) -> String {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by_key(|f| std::cmp::Reverse(f.level));
    let mut out = String::new();
    for f in sorted {
        let _ = writeln!(out, "[{:<9}] {}", f.level.label(lang), f.message);
        if !f.fix.is_empty() {
            let _ = writeln!(out, "            → {}", f.fix);
        }
    }
    let count = |l: Level| findings.iter().filter(|f| f.level == l).count();
    let (c, h, w) = (
        count(Level::Critical),
        count(Level::High),
        count(Level::Warning),
    );
    let _ = match lang {
        Lang::Fr => writeln!(
            out,
            "\nBilan : {c} critique(s), {h} grave(s), {w} à surveiller.{}",
            if c + h == 0 {
                " Rien de grave n'a été trouvé."
            } else {
                " Corrigez d'abord les points critiques et graves."
            }
        ),
        Lang::En => writeln!(
            out,
            "\nSummary: {c} critical, {h} high, {w} warning(s).{}",
            if c + h == 0 {
                " Nothing serious was found."
            } else {
                " Fix the critical and high findings first."
            }
        ),
    };
    out
}

// ---- the gateway's own TLS ----------------------------------------------------------------

/// Where to reach the gateway's HTTPS listener from this machine.
fn local(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

struct Handshake {
    chain: Vec<CertificateDer<'static>>,
    alpn_h2: bool,
}

/// Handshakes with the running gateway once per TLS version; returns the chain it serves.
async fn gateway_tls(
    config: &Config,
    opts: &Options,
    r: &mut Report,
) -> Option<Vec<CertificateDer<'static>>> {
    let addr = local(config.listen.https);
    let sni = config.server_name.clone();
    let t13 = handshake(addr, &sni, &rustls::version::TLS13, opts.timeout).await;
    let t12 = handshake(addr, &sni, &rustls::version::TLS12, opts.timeout).await;
    let (ok13, ok12) = (t13.is_ok(), t12.is_ok());
    if !ok13 && !ok12 {
        let why = t13.err().unwrap_or_default();
        r.add(
            Level::High,
            "gateway",
            say!(
                "Vigie ne répond pas en HTTPS sur {addr} ({why}) : les vérifications TLS portent sur les fichiers seulement.",
                "Vigie does not answer HTTPS on {addr} ({why}): the TLS checks only looked at the files.",
            ),
            (
                "Démarrez Vigie (docker compose up -d) ou corrigez listen.https, puis relancez cette vérification.",
                "Start Vigie (docker compose up -d) or correct listen.https, then run this check again.",
            ),
        );
        return None;
    }
    let mut versions = Vec::new();
    if ok13 {
        versions.push("TLS 1.3");
    }
    if ok12 {
        versions.push("TLS 1.2");
    }
    let versions = versions.join(", ");
    let h2 = t13.as_ref().or(t12.as_ref()).is_ok_and(|h| h.alpn_h2);
    let h2 = if h2 { " + HTTP/2" } else { "" };
    let min12 = config.tls.min_version == TlsMinVersion::Tls12;
    if ok12 && !min12 {
        r.add(
            Level::Warning,
            "tls",
            say!(
                "Vigie accepte TLS 1.2 alors que tls.min_version demande TLS 1.3 ({versions}).",
                "Vigie accepts TLS 1.2 although tls.min_version asks for TLS 1.3 ({versions}).",
            ),
            (
                "Redémarrez Vigie pour appliquer tls.min_version.",
                "Restart Vigie so that tls.min_version applies.",
            ),
        );
    } else {
        r.add(
            Level::Ok,
            "tls",
            say!(
                "Versions TLS proposées : {versions}{h2}, chiffrements modernes uniquement ; SSL, TLS 1.0 et 1.1 n'existent pas dans Vigie.",
                "TLS versions offered: {versions}{h2}, modern ciphers only; SSL, TLS 1.0 and 1.1 do not exist in Vigie.",
            ),
            ("", ""),
        );
    }
    t13.or(t12).ok().map(|h| h.chain)
}

async fn handshake(
    addr: SocketAddr,
    sni: &str,
    version: &'static rustls::SupportedProtocolVersion,
    timeout: Duration,
) -> Result<Handshake, String> {
    let provider = tls::provider();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let connect = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    let stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| "timeout".to_string())??;
    let conn = stream.get_ref().1;
    Ok(Handshake {
        chain: conn
            .peer_certificates()
            .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
            .unwrap_or_default(),
        alpn_h2: conn.alpn_protocol() == Some(b"h2"),
    })
}

/// Accepts whatever certificate the gateway presents (it is judged separately, against the
/// system's authorities) but still checks the handshake signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ---- certificate ----------------------------------------------------------------------------

fn certificate(config: &Config, served: Option<&[CertificateDer<'static>]>, r: &mut Report) {
    // The chain the running gateway serves, or else the one in the files.
    let chain = served
        .map(<[_]>::to_vec)
        .or_else(|| read_chain(&config.tls.cert_file));
    let Some((chain, info)) = chain.and_then(|c| tls::describe(&c).map(|info| (c, info))) else {
        let file = config.tls.cert_file.display();
        r.add(
            Level::High,
            "certificate",
            say!(
                "Le certificat ({file}) est illisible.",
                "The certificate ({file}) cannot be read.",
            ),
            (
                "Vérifiez tls.cert_file (chemin, droits de lecture, format PEM) ; `vigie check` donne le détail.",
                "Check tls.cert_file (path, read permission, PEM format); `vigie check` gives the details.",
            ),
        );
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = info.seconds_left(now).div_euclid(86_400);
    let until = date(info.not_after);
    let name = &config.server_name;
    if days < 0 {
        r.add(
            Level::Critical,
            "certificate",
            say!(
                "Le certificat de {name} a expiré le {until} : les navigateurs refusent la connexion.",
                "The certificate for {name} expired on {until}: browsers refuse the connection.",
            ),
            (
                "Renouvelez-le et remplacez les fichiers ; Vigie les recharge sans redémarrage.",
                "Renew it and replace the files; Vigie reloads them without a restart.",
            ),
        );
    } else if days < 7 {
        r.add(
            Level::High,
            "certificate",
            say!(
                "Le certificat de {name} expire dans {days} jour(s) ({until}).",
                "The certificate for {name} expires in {days} day(s) ({until}).",
            ),
            (
                "Renouvelez-le maintenant ; Vigie recharge les nouveaux fichiers sans redémarrage.",
                "Renew it now; Vigie reloads the new files without a restart.",
            ),
        );
    } else if days < 21 {
        r.add(
            Level::Warning,
            "certificate",
            say!(
                "Le certificat de {name} expire dans {days} jours ({until}).",
                "The certificate for {name} expires in {days} days ({until}).",
            ),
            (
                "Prévoyez son renouvellement (ou vérifiez que le renouvellement automatique fonctionne).",
                "Plan its renewal (or check that automatic renewal works).",
            ),
        );
    } else {
        r.add(
            Level::Ok,
            "certificate",
            say!(
                "Le certificat de {name} est valable jusqu'au {until} ({days} jours).",
                "The certificate for {name} is valid until {until} ({days} days).",
            ),
            ("", ""),
        );
    }
    if !info.covers(name) {
        r.add(
            Level::High,
            "certificate",
            say!(
                "Le certificat ne couvre pas le nom {name} : les navigateurs affichent une alerte.",
                "The certificate does not cover the name {name}: browsers show a warning.",
            ),
            (
                "Utilisez un certificat émis pour ce nom, ou corrigez server_name.",
                "Use a certificate issued for this name, or correct server_name.",
            ),
        );
    }
    match public_trust(&chain, &info, name) {
        Trust::Public => r.add(
            Level::Ok,
            "certificate",
            say!(
                "La chaîne de certificats est complète et reconnue par les autorités publiques (navigateurs sans alerte).",
                "The certificate chain is complete and trusted by the public authorities (no browser warning).",
            ),
            ("", ""),
        ),
        Trust::SelfSigned => r.add(
            Level::Warning,
            "certificate",
            say!(
                "Le certificat est auto-signé : chaque navigateur affichera une alerte que les utilisateurs apprendront à ignorer.",
                "The certificate is self-signed: every browser shows a warning that users learn to click through.",
            ),
            (
                "Utilisez un certificat d'une autorité publique (Let's Encrypt) pour un nom public, ou une autorité locale installée sur chaque poste.",
                "Use a certificate from a public authority (Let's Encrypt) for a public name, or a local authority installed on every workstation.",
            ),
        ),
        Trust::Unknown(why) => r.add(
            Level::Warning,
            "certificate",
            say!(
                "La chaîne n'est pas reconnue par les autorités publiques ({why}) : seuls les postes où votre autorité locale est installée feront confiance.",
                "The chain is not trusted by the public authorities ({why}): only workstations with your local authority installed will trust it.",
            ),
            (
                "Installez votre autorité locale sur chaque poste, ou utilisez un certificat public ; si c'en est un, ajoutez les intermédiaires à tls.cert_file.",
                "Install your local authority on every workstation, or use a public certificate; if it is one, add the intermediates to tls.cert_file.",
            ),
        ),
    }
}

fn read_chain(path: &std::path::Path) -> Option<Vec<CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let bytes = std::fs::read(path).ok()?;
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .ok()?;
    (!chain.is_empty()).then_some(chain)
}

enum Trust {
    Public,
    SelfSigned,
    Unknown(String),
}

fn public_trust(chain: &[CertificateDer<'static>], info: &tls::CertInfo, name: &str) -> Trust {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Trust::Unknown("empty chain".into());
    };
    if info.subject == info.issuer {
        return Trust::SelfSigned;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Trust::Unknown("no system authorities found (ca-certificates)".into());
    }
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        tls::provider(),
    )
    .build() else {
        return Trust::Unknown("no verifier".into());
    };
    let Ok(server_name) = ServerName::try_from(name.to_string()) else {
        return Trust::Unknown(format!("`{name}` is not a valid name"));
    };
    match verifier.verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now()) {
        Ok(_) => Trust::Public,
        Err(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            Trust::Unknown("unknown issuer".into())
        }
        Err(e) => Trust::Unknown(e.to_string()),
    }
}

fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|d| format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()))
        .unwrap_or_else(|_| unix.to_string())
}

// ---- the upstream -----------------------------------------------------------------------------

/// Where an address sits, as seen from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Only this machine.
    Loopback,
    /// A private or link-local network (RFC 1918, RFC 6598 shared space, IPv6 ULA/link-local).
    Private,
    /// Anything else: routable on the internet.
    Public,
}

/// Classifies an address.
pub fn classify(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Reach::Loopback
            } else if v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Reach::Loopback
            } else if (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.is_unspecified()
            {
                Reach::Private
            } else {
                Reach::Public
            }
        }
    }
}

async fn upstream_address(config: &Config, r: &mut Report) {
    let host = config
        .upstream
        .authority
        .host()
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = config.upstream.authority.port_u16().unwrap_or(80);
    let addrs: Vec<IpAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(a) => a
            .map(|s| s.ip())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        Err(e) => {
            r.add(
                Level::High,
                "upstream_address",
                say!(
                    "Le nom du visualiseur `{host}` (upstream.url) ne se résout pas : {e}.",
                    "The viewer's name `{host}` (upstream.url) does not resolve: {e}.",
                ),
                (
                    "Corrigez upstream.url (avec Docker : le nom du service, par exemple http://orthanc:8042).",
                    "Correct upstream.url (with Docker: the service name, e.g. http://orthanc:8042).",
                ),
            );
            return;
        }
    };
    let public: Vec<String> = addrs
        .iter()
        .filter(|ip| classify(**ip) == Reach::Public)
        .map(|ip| ip.to_string())
        .collect();
    let list = addrs
        .iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // "orthanc → 172.18.0.2", or just the address when the URL names one.
    let host = if host.parse::<IpAddr>().is_ok() {
        String::new()
    } else {
        format!("{host} → ")
    };
    if !public.is_empty() {
        let public = public.join(", ");
        r.add(
            Level::Critical,
            "upstream_address",
            say!(
                "Le visualiseur ({host}{public}) est sur une adresse publique d'internet : on peut l'atteindre sans passer par Vigie, et le trafic vers lui n'est pas chiffré.",
                "The viewer ({host}{public}) is on a public internet address: it can be reached without going through Vigie, and traffic to it is not encrypted.",
            ),
            (
                "Placez le visualiseur sur un réseau interne (réseau Docker interne, adresse 192.168.x.x ou 10.x.x.x) et pointez upstream.url dessus ; ne redirigez jamais son port sur la box.",
                "Move the viewer to an internal network (Docker internal network, a 192.168.x.x or 10.x.x.x address) and point upstream.url at it; never forward its port on the internet box.",
            ),
        );
    } else if addrs.iter().all(|ip| classify(*ip) == Reach::Loopback) {
        r.add(
            Level::Ok,
            "upstream_address",
            say!(
                "Le visualiseur ({host}{list}) n'est joignable que depuis cette machine (boucle locale).",
                "The viewer ({host}{list}) is only reachable from this machine (loopback).",
            ),
            ("", ""),
        );
    } else {
        r.add(
            Level::Ok,
            "upstream_address",
            say!(
                "Le visualiseur ({host}{list}) est sur un réseau privé ; vérifiez que la box ne redirige aucun port vers lui.",
                "The viewer ({host}{list}) is on a private network; make sure the internet box forwards no port to it.",
            ),
            ("", ""),
        );
    }
}

async fn upstream_credentials(config: &Config, opts: &Options, r: &mut Report) {
    let u = &config.upstream;
    let mut paths = vec![u.health_path.clone()];
    if u.health_path != "/" {
        paths.push("/".into());
    }
    let mut open = Vec::new();
    let mut refused = 0;
    let mut unreachable = None;
    for path in &paths {
        match get(config, path, None, opts.timeout).await {
            Ok(s) if s.is_success() => open.push(format!("{path} → {}", s.as_u16())),
            Ok(s) if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => refused += 1,
            Ok(_) => {}
            Err(e) => unreachable = Some(e),
        }
    }
    let url = &u.url;
    if let Some(e) = unreachable {
        r.add(
            Level::High,
            "upstream_credentials",
            say!(
                "Le visualiseur {url} ne répond pas : {e}.",
                "The viewer {url} does not answer: {e}.",
            ),
            (
                "Démarrez le visualiseur, ou corrigez upstream.url.",
                "Start the viewer, or correct upstream.url.",
            ),
        );
        return;
    }
    if !open.is_empty() {
        let open = open.join(", ");
        r.add(
            Level::High,
            "upstream_credentials",
            say!(
                "Le visualiseur répond sans identifiants ({open}) : quiconque atteint son port lit les images sans passer par Vigie.",
                "The viewer answers without credentials ({open}): anyone who reaches its port reads the images without going through Vigie.",
            ),
            (
                "Exigez un mot de passe dans le visualiseur (Orthanc : \"AuthenticationEnabled\": true et un compte dans \"RegisteredUsers\") et donnez-le à Vigie dans upstream.credentials.",
                "Require a password in the viewer (Orthanc: \"AuthenticationEnabled\": true and an account in \"RegisteredUsers\") and give it to Vigie in upstream.credentials.",
            ),
        );
        return;
    }
    if refused == 0 {
        let tried = paths.join(", ");
        r.add(
            Level::Info,
            "upstream_credentials",
            say!(
                "Impossible de dire si le visualiseur exige des identifiants (ni succès ni refus sur {tried}).",
                "Cannot tell whether the viewer requires credentials (neither success nor refusal on {tried}).",
            ),
            (
                "Réglez upstream.health_path sur une adresse de l'API du visualiseur (Orthanc : /system).",
                "Set upstream.health_path to an address of the viewer's API (Orthanc: /system).",
            ),
        );
        return;
    }
    let Some(creds) = &u.credentials else {
        r.add(
            Level::Warning,
            "upstream_credentials",
            say!(
                "Le visualiseur refuse les requêtes sans identifiants, mais upstream.credentials n'est pas configuré : Vigie sera refusé lui aussi.",
                "The viewer refuses requests without credentials, but upstream.credentials is not set: Vigie will be refused too.",
            ),
            (
                "Ajoutez upstream.credentials (username et password_file) avec le compte du visualiseur réservé à Vigie.",
                "Add upstream.credentials (username and password_file) with the viewer account kept for Vigie.",
            ),
        );
        return;
    };
    match get(config, &u.health_path, Some(creds.expose()), opts.timeout).await {
        Ok(s) if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN => r.add(
            Level::High,
            "upstream_credentials",
            say!(
                "Le visualiseur exige des identifiants mais refuse ceux de Vigie ({s}).",
                "The viewer requires credentials but refuses Vigie's ({s}).",
            ),
            (
                "Donnez dans upstream.credentials le même compte que dans le visualiseur (Orthanc : \"RegisteredUsers\").",
                "Put the viewer's account (Orthanc: \"RegisteredUsers\") in upstream.credentials.",
            ),
        ),
        _ => r.add(
            Level::Ok,
            "upstream_credentials",
            say!(
                "Le visualiseur refuse les requêtes sans identifiants ; seul Vigie les connaît.",
                "The viewer refuses requests without credentials; only Vigie knows them.",
            ),
            ("", ""),
        ),
    }
}

/// One GET to the upstream over a fresh connection.
async fn get(
    config: &Config,
    path: &str,
    auth: Option<&http::HeaderValue>,
    timeout: Duration,
) -> Result<StatusCode, String> {
    let authority = &config.upstream.authority;
    let host = authority.host().trim_matches(|c| c == '[' || c == ']');
    let port = authority.port_u16().unwrap_or(80);
    get_at((host, port), authority.as_str(), path, auth, timeout)
        .await
        .map(|(status, _)| status)
}

/// One plain-HTTP GET to `to` with this `Host`: the status and the `Location` header.
async fn get_at(
    to: (&str, u16),
    host: &str,
    path: &str,
    auth: Option<&http::HeaderValue>,
    timeout: Duration,
) -> Result<(StatusCode, Option<String>), String> {
    let res = tokio::time::timeout(timeout, send_get(to, host, path, auth))
        .await
        .map_err(|_| "timeout".to_string())??;
    let location = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    Ok((res.status(), location))
}

/// Sends one GET over a fresh plain-HTTP connection and returns the response head (the body
/// streams on).
async fn send_get(
    to: (&str, u16),
    host: &str,
    path: &str,
    auth: Option<&http::HeaderValue>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let tcp = TcpStream::connect(to)
        .await
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::get(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "vigie-check");
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    send.send_request(req).await.map_err(|e| e.to_string())
}

/// The plain-HTTP listener must only send browsers to HTTPS: never a page, never the viewer.
async fn plain_http(config: &Config, opts: &Options, r: &mut Report) {
    let Some(listen) = config.listen.http else {
        return;
    };
    let addr = local(listen);
    let ip = addr.ip().to_string();
    let answer = get_at(
        (ip.as_str(), addr.port()),
        &config.server_name,
        "/app/explorer.html",
        None,
        opts.timeout,
    )
    .await;
    match answer {
        Ok((status, Some(location)))
            if status.is_redirection() && location.starts_with("https://") =>
        {
            r.add(
                Level::Ok,
                "plain_http",
                say!(
                    "Le port HTTP non chiffré ({listen}) ne fait que rediriger vers HTTPS.",
                    "The unencrypted HTTP port ({listen}) only redirects to HTTPS.",
                ),
                ("", ""),
            );
        }
        Ok((status, _)) => {
            let code = status.as_u16();
            r.add(
                Level::Critical,
                "plain_http",
                say!(
                    "Le port HTTP non chiffré ({listen}) répond {code} au lieu de rediriger vers HTTPS : des pages peuvent circuler en clair.",
                    "The unencrypted HTTP port ({listen}) answers {code} instead of redirecting to HTTPS: pages may travel unencrypted.",
                ),
                (
                    "Vérifiez que c'est bien Vigie qui écoute sur listen.http (et pas le visualiseur ou un autre serveur).",
                    "Check that Vigie itself listens on listen.http (not the viewer or another server).",
                ),
            );
        }
        Err(e) => r.add(
            Level::Info,
            "plain_http",
            say!(
                "Le port HTTP ({listen}) ne répond pas ({e}).",
                "The HTTP port ({listen}) does not answer ({e}).",
            ),
            ("", ""),
        ),
    }
}

// ---- sign-in and policy -----------------------------------------------------------------------

fn second_factor(config: &Config, r: &mut Report) {
    let a = &config.auth;
    if !a.second_factor {
        r.add(
            Level::High,
            "second_factor",
            say!(
                "Le second facteur est désactivé (auth.second_factor: off) : un mot de passe seul ouvre l'accès aux images, ce que l'ANS n'accepte plus pour l'accès à distance aux données de santé depuis le 1er janvier 2026.",
                "The second factor is off (auth.second_factor: off): a password alone opens the images, which the ANS no longer accepts for remote access to health data since 1 January 2026.",
            ),
            (
                "Retirez auth.second_factor (ou mettez totp) et enregistrez un code TOTP pour chaque compte (vigie user add).",
                "Remove auth.second_factor (or set it to totp) and enrol a TOTP code for each account (vigie user add).",
            ),
        );
    } else {
        r.add(
            Level::Ok,
            "second_factor",
            say!(
                "Le second facteur (code TOTP) est exigé à chaque connexion.",
                "The second factor (TOTP code) is required at every sign-in.",
            ),
            ("", ""),
        );
    }
    let active = a.users.iter().filter(|u| !u.disabled).count();
    if active == 0 {
        r.add(
            Level::Warning,
            "accounts",
            say!(
                "Aucun compte actif : personne ne peut se connecter.",
                "No active account: nobody can sign in.",
            ),
            (
                "Ajoutez un compte avec `vigie user add NOM --roles doctor --config …`.",
                "Add an account with `vigie user add NAME --roles doctor --config …`.",
            ),
        );
    }
}

/// Orthanc's routes that run code, write outside the database, send or fetch images across the
/// network, rewrite or delete images, or control the server: `(method, route, French, English)`.
/// `{id}` stands for one path segment.
const DANGEROUS: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/tools/execute-script",
        "exécuter du code Lua sur le serveur",
        "run Lua code on the server",
    ),
    (
        "POST",
        "/instances/{id}/export",
        "écrire le fichier DICOM n'importe où sur le serveur d'Orthanc (CVE-2023-33466)",
        "write the DICOM file anywhere on the Orthanc host (CVE-2023-33466)",
    ),
    (
        "POST",
        "/tools/reset",
        "redémarrer Orthanc",
        "restart Orthanc",
    ),
    (
        "POST",
        "/tools/shutdown",
        "arrêter Orthanc",
        "shut Orthanc down",
    ),
    (
        "POST",
        "/modalities/{id}/store",
        "envoyer des images vers un appareil DICOM",
        "send images to a DICOM device",
    ),
    (
        "POST",
        "/modalities/{id}/move",
        "faire envoyer des images par un appareil DICOM (C-MOVE)",
        "have a DICOM device send images (C-MOVE)",
    ),
    (
        "PUT",
        "/modalities/{id}",
        "déclarer un appareil DICOM",
        "declare a DICOM device",
    ),
    (
        "POST",
        "/peers/{id}/store",
        "envoyer des images vers un autre serveur Orthanc",
        "send images to another Orthanc server",
    ),
    (
        "PUT",
        "/peers/{id}",
        "déclarer un autre serveur Orthanc",
        "declare another Orthanc server",
    ),
    (
        "POST",
        "/dicom-web/servers/{id}/stow",
        "envoyer des images vers un autre serveur DICOMweb",
        "send images to another DICOMweb server",
    ),
    (
        "POST",
        "/dicom-web/servers/{id}/retrieve",
        "rapatrier des images d'un autre serveur DICOMweb",
        "fetch images from another DICOMweb server",
    ),
    (
        "PUT",
        "/dicom-web/servers/{id}",
        "déclarer un serveur DICOMweb",
        "declare a DICOMweb server",
    ),
    (
        "POST",
        "/queries/{id}/retrieve",
        "rapatrier le résultat d'une requête DICOM (C-MOVE)",
        "retrieve the answers of a DICOM query (C-MOVE)",
    ),
    (
        "POST",
        "/studies/{id}/modify",
        "modifier des examens (peut supprimer les originaux)",
        "modify studies (can delete the originals)",
    ),
    (
        "POST",
        "/studies/{id}/anonymize",
        "anonymiser des examens",
        "anonymize studies",
    ),
    (
        "POST",
        "/tools/bulk-delete",
        "supprimer en masse",
        "delete in bulk",
    ),
    (
        "DELETE",
        "/studies/{id}",
        "supprimer des examens",
        "delete studies",
    ),
    (
        "DELETE",
        "/patients/{id}",
        "supprimer des patients",
        "delete patients",
    ),
    ("GET", "/jobs", "voir les tâches", "see the jobs"),
    (
        "POST",
        "/jobs/{id}/resubmit",
        "relancer des tâches",
        "resubmit jobs",
    ),
];

fn policy(config: &Config, r: &mut Report) {
    let access = config.access.as_deref();
    if access.is_none() {
        r.add(
            Level::High,
            "policy",
            say!(
                "Aucune règle d'accès (section access absente) : tout utilisateur connecté peut administrer Orthanc (supprimer, exécuter des scripts, envoyer des images ailleurs).",
                "No access rules (no access: section): every signed-in user can administer Orthanc (delete, run scripts, send images elsewhere).",
            ),
            (
                "Copiez la section access de config/orthanc.example.yaml dans votre configuration.",
                "Copy the access: section of config/orthanc.example.yaml into your configuration.",
            ),
        );
        return;
    }
    let mut roles: BTreeSet<String> = config
        .auth
        .users
        .iter()
        .flat_map(|u| u.roles.iter().cloned())
        .collect();
    roles.insert("doctor".into());
    let others: Vec<String> = roles.into_iter().filter(|r| r != "admin").collect();
    let mut open_to_all = Vec::new();
    let mut open = Vec::new();
    for (method, path, fr, en) in DANGEROUS {
        let Ok(m) = method.parse::<Method>() else {
            continue;
        };
        let probe = path.replace("{id}", "x");
        let who: Vec<&String> = others
            .iter()
            .filter(|role| crate::policy::allows(access, &m, &probe, std::slice::from_ref(*role)))
            .collect();
        let label = |lang: Lang| {
            let what = if lang == Lang::Fr { fr } else { en };
            format!("{method} {path} ({what})")
        };
        if *path == "/tools/execute-script"
            && crate::policy::allows(access, &m, path, &["admin".to_string()])
        {
            open_to_all.push((label(Lang::Fr), label(Lang::En)));
        } else if !who.is_empty() {
            let who = who
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            open.push((
                format!("{} — {who}", label(Lang::Fr)),
                format!("{} — {who}", label(Lang::En)),
            ));
        }
    }
    for (fr, en) in open_to_all {
        r.add(
            Level::Critical,
            "policy",
            (
                format!("La politique d'accès laisse ouverte une route qui exécute du code sur le serveur : {fr}."),
                format!("The access policy leaves open a route that runs code on the server: {en}."),
            ),
            (
                "Ajoutez en tête de access la règle « - path: /tools/execute-script, roles: [] » (refusée à tous), et mettez \"ExecuteLuaEnabled\": false dans Orthanc.",
                "Add at the top of access the rule `- path: /tools/execute-script, roles: []` (refused to all), and set \"ExecuteLuaEnabled\": false in Orthanc.",
            ),
        );
    }
    if !open.is_empty() {
        let fr = open
            .iter()
            .map(|o| o.0.as_str())
            .collect::<Vec<_>>()
            .join(" ; ");
        let en = open
            .iter()
            .map(|o| o.1.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        r.add(
            Level::High,
            "policy",
            (
                format!("Des routes d'administration d'Orthanc sont ouvertes à des rôles non-admin : {fr}."),
                format!("Orthanc administration routes are open to non-admin roles: {en}."),
            ),
            (
                "Partez de la liste blanche de config/orthanc.example.yaml : les médecins n'y ont que la lecture, et la dernière règle (« - path: /, roles: [admin] ») réserve toute autre route aux administrateurs.",
                "Start from the allow-list of config/orthanc.example.yaml: doctors get reading only, and its last rule (`- path: /, roles: [admin]`) keeps every other route for admins.",
            ),
        );
    } else if r.findings.iter().all(|f| f.check != "policy") {
        r.add(
            Level::Ok,
            "policy",
            say!(
                "Les routes d'administration d'Orthanc (scripts, export de fichiers, suppression, modification, envoi et rapatriement d'images, tâches) sont réservées aux administrateurs.",
                "Orthanc's administration routes (scripts, file export, deletion, modification, sending and fetching images, jobs) are limited to administrators.",
            ),
            ("", ""),
        );
    }
}

// ---- this machine's ports ---------------------------------------------------------------------

async fn viewer_ports(config: &Config, opts: &Options, r: &mut Report) {
    let mut ports: BTreeSet<u16> = opts.viewer_ports.iter().copied().collect();
    if let Some(p) = config.upstream.authority.port_u16() {
        ports.insert(p);
    }
    // Vigie's own listeners are meant to be reachable.
    for own in [
        Some(config.listen.https),
        config.listen.http,
        config.listen.admin,
    ]
    .into_iter()
    .flatten()
    {
        ports.remove(&own.port());
    }
    // Inside a container, this machine's addresses are the container's own: a viewer port
    // published by mistake (`ports: 8042:8042`) shows on the Docker host, which is the
    // container's default gateway.
    let docker_host = in_container().then(default_gateway).flatten();
    let addrs: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(list) => list
            .into_iter()
            .map(|i| i.ip())
            .chain(docker_host.map(IpAddr::V4))
            .filter(|ip| !ip.is_loopback() && !is_v6_link_local(ip))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        Err(e) => {
            r.add(
                Level::Info,
                "viewer_ports",
                say!(
                    "Impossible de lister les adresses réseau de cette machine : {e}.",
                    "Cannot list this machine's network addresses: {e}.",
                ),
                ("", ""),
            );
            return;
        }
    };
    let port_list = ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if addrs.is_empty() {
        r.add(
            Level::Info,
            "viewer_ports",
            say!(
                "Cette machine n'a pas d'adresse réseau autre que la boucle locale : ports {port_list} non testés.",
                "This machine has no network address besides loopback: ports {port_list} not tested.",
            ),
            ("", ""),
        );
        return;
    }
    let probe_timeout = opts.timeout.min(Duration::from_millis(800));
    let mut attempts = Vec::new();
    for ip in &addrs {
        for port in &ports {
            let addr = SocketAddr::new(*ip, *port);
            attempts.push(async move {
                let open = matches!(
                    tokio::time::timeout(probe_timeout, TcpStream::connect(addr)).await,
                    Ok(Ok(_))
                );
                (addr, open)
            });
        }
    }
    let results = futures_util::future::join_all(attempts).await;
    let open: Vec<SocketAddr> = results
        .into_iter()
        .filter_map(|(a, open)| open.then_some(a))
        .collect();
    let addr_list = addrs
        .iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if open.is_empty() {
        r.add(
            Level::Ok,
            "viewer_ports",
            say!(
                "Les ports du visualiseur ({port_list}) ne répondent sur aucune adresse réseau de cette machine ({addr_list}).",
                "The viewer's ports ({port_list}) answer on none of this machine's network addresses ({addr_list}).",
            ),
            ("", ""),
        );
        return;
    }
    for addr in open {
        let (ip, port) = (addr.ip(), addr.port());
        let what = match port {
            8042 => " (Orthanc web)",
            4242 => " (DICOM)",
            _ => "",
        };
        let level = if classify(ip) == Reach::Public {
            Level::Critical
        } else {
            Level::High
        };
        let ip = match docker_host {
            Some(h) if IpAddr::V4(h) == ip => match r.lang {
                Lang::Fr => format!("{ip} (l'hôte Docker)"),
                Lang::En => format!("{ip} (the Docker host)"),
            },
            _ => ip.to_string(),
        };
        r.add(
            level,
            "viewer_ports",
            say!(
                "Le port {port}{what} répond sur l'adresse réseau {ip} de cette machine : une box qui le redirige, ou n'importe quel appareil du réseau, atteint le visualiseur sans passer par Vigie.",
                "Port {port}{what} answers on this machine's network address {ip}: an internet box forwarding it, or any device on the network, reaches the viewer without going through Vigie.",
            ),
            (
                "Faites écouter le visualiseur sur la boucle locale ou un réseau Docker interne (pas de `ports:` pour lui dans compose), ou bloquez ce port au pare-feu ; ne le redirigez jamais sur la box.",
                "Make the viewer listen on loopback or an internal Docker network (no `ports:` for it in compose), or block the port in the firewall; never forward it on the internet box.",
            ),
        );
    }
}

fn in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::path::Path::new("/run/.containerenv").exists()
}

/// The IPv4 default gateway, from `/proc/net/route` (Linux).
fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_default_gateway(&table)
}

fn parse_default_gateway(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[1] != "00000000" {
            return None;
        }
        // Hexadecimal, in the kernel's (little-endian) byte order.
        let g = u32::from_str_radix(f[2], 16).ok()?;
        (g != 0).then(|| Ipv4Addr::from(g.to_le_bytes()))
    })
}

fn is_v6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

fn admin_listener(config: &Config, r: &mut Report) {
    if let Some(admin) = config.listen.admin
        && classify(admin.ip()) != Reach::Loopback
    {
        r.add(
            Level::Warning,
            "admin_listener",
            say!(
                "L'écoute d'administration (santé, métriques) est ouverte sur {admin}, pas seulement sur la boucle locale.",
                "The admin listener (health, metrics) is open on {admin}, not only on loopback.",
            ),
            (
                "Mettez listen.admin sur 127.0.0.1:9901 sauf si un outil de supervision doit la joindre depuis un réseau interne.",
                "Set listen.admin to 127.0.0.1:9901 unless a monitoring tool must reach it from an internal network.",
            ),
        );
    }
}

// ---- `vigie health` ----------------------------------------------------------------------------

/// Asks the running gateway's admin listener whether it is ready (`/readyz`): `Ok` with its
/// answer when it is, `Err` with the reason otherwise.
pub async fn health(config: &Config, timeout: Duration) -> Result<String, String> {
    let Some(admin) = config.listen.admin else {
        return Err(
            "listen.admin is not set: add `admin: 127.0.0.1:9901` under listen: so that the health check can ask the gateway"
                .into(),
        );
    };
    let addr = local(admin);
    let ip = addr.ip().to_string();
    let host = addr.to_string();
    let attempt = async {
        let res = send_get((ip.as_str(), addr.port()), &host, "/readyz", None)
            .await
            .map_err(|e| format!("admin listener: {e}"))?;
        let status = res.status();
        let body = http_body_util::BodyExt::collect(res.into_body())
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(format!("not ready ({}): {body}", status.as_u16()))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("no answer from the admin listener {addr} within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_classified() {
        let c = |s: &str| classify(s.parse().unwrap());
        assert_eq!(c("127.0.0.1"), Reach::Loopback);
        assert_eq!(c("::1"), Reach::Loopback);
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.20",
            "169.254.1.1",
            "100.64.0.1",
            "fd00::1",
            "fe80::1",
            "::ffff:192.168.0.1",
        ] {
            assert_eq!(c(private), Reach::Private, "{private}");
        }
        for public in [
            "203.0.113.10",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(c(public), Reach::Public, "{public}");
        }
    }

    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     eth0\t0012A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
                     eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\n";
        assert_eq!(
            parse_default_gateway(table),
            Some(Ipv4Addr::new(172, 18, 0, 1))
        );
        assert_eq!(parse_default_gateway("Iface\tDestination\n"), None);
    }

    #[test]
    fn exit_code_follows_the_worst_finding() {
        let f = |level| Finding {
            level,
            check: "x",
            message: String::new(),
            fix: String::new(),
        };
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::Info)]), 0);
        assert_eq!(exit_code(&[f(Level::Ok), f(Level::Warning)]), 3);
        assert_eq!(exit_code(&[f(Level::Warning), f(Level::High)]), 1);
        assert_eq!(exit_code(&[f(Level::Critical)]), 1);
    }
}
