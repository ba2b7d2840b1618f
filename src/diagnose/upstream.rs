//! The upstream viewer: where its address sits (loopback, private, public), whether it can be
//! reached, and whether it refuses requests without credentials while accepting Vigie's.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};

use http::StatusCode;

use super::probe::get;
use super::{Level, Options, Report, say};
use crate::config::Config;

/// Where an address sits, as seen from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Only this machine.
    Loopback,
    /// A private or link-local network (RFC 1918, RFC 6598 shared space, IPv6 ULA/link-local).
    Private,
    /// Anything else: routable on the internet.
    Public,
}

/// Classifies an address.
pub(crate) fn classify(ip: IpAddr) -> Reach {
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

pub(super) async fn address(config: &Config, r: &mut Report) {
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

/// Whether the upstream wants credentials (and Vigie's work); true when it answers without.
pub(super) async fn credentials(config: &Config, opts: &Options, r: &mut Report) -> bool {
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
        return false;
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
        return true;
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
        return false;
    }
    let Some(creds) = u.authorization() else {
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
        return false;
    };
    match get(config, &u.health_path, Some(&creds), opts.timeout).await {
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
    false
}

/// Whether the upstream accepts TCP connections (within `upstream.connect_timeout`): a critical
/// finding when it does not, since the gateway would answer every request with an error page.
pub(super) fn reachable(config: &Config, r: &mut Report) -> bool {
    let u = &config.upstream;
    let host = u.authority.host().trim_matches(|c| c == '[' || c == ']');
    let port = u.authority.port_u16().unwrap_or(80);
    let key = Some("upstream.url".to_string());
    let addrs: Vec<_> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            r.add_at(
                Level::Critical,
                "upstream",
                key,
                say!(
                    "Le nom du visualiseur `{host}` (upstream.url) ne se résout pas : {e}.",
                    "cannot resolve `{host}`: {e}",
                ),
                (
                    "Corrigez le nom d'hôte du visualiseur (avec Docker : le nom du service).",
                    "check the host name of the viewer (in Docker: the service name)",
                ),
            );
            return false;
        }
    };
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, u.connect_timeout) {
            Ok(_) => {
                let authority = &u.authority;
                r.add(
                    Level::Ok,
                    "upstream",
                    say!(
                        "Le visualiseur {authority} accepte les connexions.",
                        "The viewer {authority} accepts connections.",
                    ),
                    ("", ""),
                );
                return true;
            }
            Err(e) => last = Some(e.to_string()),
        }
    }
    let authority = &u.authority;
    let why = last.unwrap_or_else(|| "no address".into());
    r.add_at(
        Level::Critical,
        "upstream",
        key,
        say!(
            "Impossible de se connecter au visualiseur {authority} : {why}.",
            "cannot connect to the upstream {authority}: {why}",
        ),
        (
            "Démarrez d'abord le visualiseur, ou corrigez upstream.url.",
            "start the viewer first, or correct upstream.url",
        ),
    );
    false
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
}
