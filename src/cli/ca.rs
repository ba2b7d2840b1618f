//! `vigie ca init` and `vigie ca issue`: the practice's own certificate authority, for a
//! gateway reached on the practice's network only (no public name, so no Let's Encrypt). The CA
//! lives in `state_dir/ca/` (0700, its key 0600) and never leaves it; what the doctors install is
//! `ca.crt`, checked by its fingerprint.

use std::path::Path;

use anyhow::Context as _;

use crate::tls::ca::{CaFiles, LocalCa, MAX_DAYS};

/// The configuration.
fn config_of(config: &Path) -> anyhow::Result<crate::config::Config> {
    let (config, _) = crate::config::Config::load(config)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("reading the configuration")?;
    Ok(config)
}

/// `vigie ca init`: creates the CA (never replaces one) and says how to install it.
pub(super) fn init(config: &Path, name: Option<&str>) -> anyhow::Result<()> {
    let state_dir = config_of(config)?.state_dir;
    let dir = state_dir.join("ca");
    crate::files::create_private_dir(&state_dir)
        .and_then(|()| crate::files::create_private_dir(&dir))
        .with_context(|| format!("creating {}", dir.display()))?;
    let cn = name.map_or_else(
        || "Vigie practice CA".to_string(),
        |n| format!("{n} (Vigie)"),
    );
    let ca = LocalCa::create(CaFiles::in_dir(&dir), &cn)?;
    println!(
        "created the practice CA \"{cn}\": {}",
        ca.files.cert.display()
    );
    println!(
        "its key stays in {} (mode 0600): back it up with state_dir",
        ca.files.key.display()
    );
    print_install(&ca);
    Ok(())
}

/// `vigie ca issue NAME...`: a server certificate from the CA.
pub(super) fn issue(
    config: &Path,
    names: &[String],
    days: u32,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_DAYS).contains(&days),
        "--days must be between 1 and {MAX_DAYS}: browsers refuse longer server certificates"
    );
    let cfg = config_of(config)?;
    let dir = cfg.state_dir.join("ca");
    let files = CaFiles::in_dir(&dir);
    anyhow::ensure!(
        files.exist(),
        "there is no practice CA in {}: create it with `vigie ca init --config {}`",
        dir.display(),
        config.display()
    );
    let ca = LocalCa::load(files)?;
    let names: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    for n in &names {
        anyhow::ensure!(
            !n.contains('*') && rustls_pki_types::ServerName::try_from(n.as_str()).is_ok(),
            "`{n}` is not a host name or an IP address (e.g. pacs.cabinet.lan or 192.168.1.20)"
        );
    }
    let out = out.map_or_else(|| dir.join("issued").join(&names[0]), Path::to_path_buf);
    // With tls.local_ca, that folder is the gateway's own certificate, which it renews itself.
    let own = cfg.tls.cert_file.parent();
    anyhow::ensure!(
        cfg.tls.source != crate::config::CertSource::LocalCa || own != Some(out.as_path()),
        "{} holds the gateway's own certificate, which it issues and renews itself (tls.local_ca): nothing to do; for a copy elsewhere, add --out FOLDER",
        out.display()
    );
    let (cert, key) = ca.issue_to(&names, days, &out)?;
    println!(
        "certificate: {} (valid {days} days, for {})",
        cert.display(),
        names.join(", ")
    );
    println!("key:         {} (mode 0600)", key.display());
    println!(
        "for a server that reads files (tls.cert_file and tls.key_file): point them at these two; a gateway reloads them"
    );
    Ok(())
}

fn print_install(ca: &LocalCa) {
    let file = ca.files.cert.display();
    println!();
    println!("SHA-256 fingerprint: {}", ca.fingerprint());
    println!(
        "Install {file} on each doctor's computer once, after comparing its fingerprint with the one above:"
    );
    println!("  Windows (as administrator): certutil -addstore -f Root ca.crt");
    println!(
        "  macOS: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ca.crt"
    );
    println!(
        "  Firefox (its own store): Settings > Privacy & Security > Certificates > View Certificates > Authorities > Import, then tick \"Trust this CA to identify websites\""
    );
    println!(
        "  Linux (Debian): cp ca.crt /usr/local/share/ca-certificates/vigie-ca.crt && update-ca-certificates"
    );
}
