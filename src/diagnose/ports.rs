//! This machine's ports: the viewer's usual ports reachable on a network address (the CNIL
//! cases), and an admin listener bound beyond loopback.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use super::upstream::{Reach, classify};
use super::{Level, Options, Report, say};
use crate::config::Config;
use crate::host::in_container;

pub(super) async fn viewer_ports(config: &Config, opts: &Options, r: &mut Report) {
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
            Some(h) if IpAddr::V4(h) == ip => {
                let host = r.lang.pick_text("l'hôte Docker", "the Docker host");
                format!("{ip} ({host})")
            }
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

pub(super) fn admin_listener(config: &Config, r: &mut Report) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
