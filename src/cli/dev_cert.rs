//! `vigie dev-cert`: a local CA and an ECDSA P-256 server certificate for development.

use std::path::Path;

use anyhow::Context as _;

pub(super) fn run(out: &Path, name: &str) -> anyhow::Result<()> {
    let made = crate::tls::devcert::generate(out, name)
        .with_context(|| format!("creating a development certificate in {}", out.display()))?;
    println!(
        "{} CA: {}",
        if made.ca_reused { "reused" } else { "created" },
        made.ca_cert.display()
    );
    println!("certificate: {}", made.cert.display());
    println!("key:         {}", made.key.display());
    println!(
        "Browsers will trust the gateway once {} is imported as an authority (development only).",
        made.ca_cert.display()
    );
    Ok(())
}
