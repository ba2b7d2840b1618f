//! Alerts by email, through `lettre` (maintained, async on tokio, rustls with the system's
//! authorities plus an optional CA file): STARTTLS required or TLS from the first byte; plain
//! SMTP only to a relay on this machine (the configuration refuses it elsewhere).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::SendError;
use crate::config::{EmailChannel, SmtpSecurity};

/// Connection, greeting and each command at most.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A configured SMTP channel.
pub(crate) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    target: String,
}

impl Email {
    /// Prepares the transport (no connection yet). Fails on an unreadable CA file.
    pub(crate) fn new(c: &EmailChannel) -> Result<Email, String> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
            .port(c.port)
            .timeout(Some(TIMEOUT));
        if c.security != SmtpSecurity::None {
            let mut params = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| e.to_string())?;
            builder = builder.tls(match c.security {
                SmtpSecurity::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        let mailbox = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| format!("`{s}` is not an address: {e}"))
        };
        Ok(Email {
            transport: builder.build(),
            from: mailbox(&c.from)?,
            to: c.to.iter().map(|t| mailbox(t)).collect::<Result<_, _>>()?,
            target: format!("{}:{} → {}", c.host, c.port, c.to.join(", ")),
        })
    }

    /// Where it sends (for the command line's report and the log).
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// Sends one message to every recipient.
    pub(crate) async fn send(&self, subject: &str, text: &str) -> Result<(), SendError> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            m = m.to(to.clone());
        }
        let message = m.body(text.to_owned()).map_err(|e| SendError {
            message: e.to_string(),
            permanent: true,
        })?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: describe(&e),
            })
    }
}

/// The error with its causes (lettre's top line alone says "Connection error").
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
