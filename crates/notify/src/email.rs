//! E-mail over SMTP (lettre, blocking, rustls with the ring provider).
//!
//! Every message carries the notice's `Message-ID` (so a resend after a crash is recognisably
//! the same message), `Auto-Submitted: auto-generated` (RFC 3834: no auto-replies, no
//! vacation loops), `X-Botwatch-Case` and `Content-Language`.

use crate::render::Rendered;
use crate::{NotifyConfig, NotifyError, Result};
use botwatch_model::Timestamp;
use botwatch_store::outbox::NewNotice;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text; for a relay on localhost only.
    None,
    /// STARTTLS required (submission port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[notify.smtp]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// `smtp://host:port` (no TLS), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port`; overrides `host`/`port`/`tls` when set. Credentials may be in it.
    pub url: Option<String>,
    pub host: Option<String>,
    /// Default: 25 without TLS, 587 with STARTTLS, 465 with TLS.
    pub port: Option<u16>,
    pub tls: TlsMode,
    pub username: Option<String>,
    /// Literal, `env:NAME` or `file:PATH`.
    pub password: Option<String>,
    /// Per-command timeout; default 30 s.
    pub timeout_secs: Option<u64>,
}

/// Why a send did not go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Retrying cannot help (5xx reply, invalid address, webhook 4xx).
    Permanent(String),
    /// Might work later (4xx reply, network, timeout, webhook 5xx/408/429).
    Transient(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Permanent(e) => write!(f, "permanent: {e}"),
            SendError::Transient(e) => write!(f, "transient: {e}"),
        }
    }
}

pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

fn cfg_err(e: impl std::fmt::Display) -> NotifyError {
    NotifyError::Config(format!("smtp: {e}"))
}

impl Mailer {
    /// `None` when no SMTP server is configured.
    pub fn new(cfg: &NotifyConfig) -> Result<Option<Mailer>> {
        crate::webhook::install_crypto_provider();
        let s = &cfg.smtp;
        let builder = if let Some(url) = &s.url {
            SmtpTransport::from_url(url).map_err(cfg_err)?
        } else if let Some(host) = &s.host {
            let b = SmtpTransport::builder_dangerous(host.as_str());
            let tls = || TlsParameters::new(host.clone()).map_err(cfg_err);
            match s.tls {
                TlsMode::None => b.port(s.port.unwrap_or(25)).tls(Tls::None),
                TlsMode::Starttls => b.port(s.port.unwrap_or(587)).tls(Tls::Required(tls()?)),
                TlsMode::Tls => b.port(s.port.unwrap_or(465)).tls(Tls::Wrapper(tls()?)),
            }
        } else {
            return Ok(None);
        };
        let mut builder = builder.timeout(Some(Duration::from_secs(s.timeout_secs.unwrap_or(30))));
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            // `env:NAME` or `file:PATH` keeps the password out of the config file.
            let p = botwatch_model::secret(p).map_err(|e| cfg_err(format!("password: {e}")))?;
            builder = builder.credentials(Credentials::new(u.clone(), p));
        }
        let from: Mailbox = cfg.from.parse().map_err(|e| cfg_err(format!("from {:?}: {e}", cfg.from)))?;
        let reply_to = match &cfg.reply_to {
            Some(r) => Some(r.parse().map_err(|e| cfg_err(format!("reply_to {r:?}: {e}")))?),
            None => None,
        };
        Ok(Some(Mailer { transport: builder.build(), from, reply_to }))
    }

    /// The message for `notice`, dated `now`.
    pub fn build(&self, notice: &NewNotice, r: &Rendered, now: Timestamp) -> Result<Message, SendError> {
        build_message(&self.from, self.reply_to.as_ref(), notice, r, now)
    }

    pub fn send(&self, msg: &Message) -> Result<(), SendError> {
        match self.transport.send(msg) {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

fn raw(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Header values come from the payload: keep them to one line of printable text.
fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

pub fn build_message(
    from: &Mailbox,
    reply_to: Option<&Mailbox>,
    notice: &NewNotice,
    r: &Rendered,
    now: Timestamp,
) -> Result<Message, SendError> {
    let to: Mailbox = notice
        .recipient
        .parse()
        .map_err(|e| SendError::Permanent(format!("recipient {:?}: {e}", notice.recipient)))?;
    let mut b = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(r.subject.clone())
        .date(UNIX_EPOCH + Duration::from_micros(now.micros().max(0) as u64))
        .message_id(Some(format!("<{}>", one_line(&notice.message_id))))
        .raw_header(raw("Auto-Submitted", "auto-generated".into()))
        .raw_header(raw("Content-Language", one_line(&r.lang)));
    if let Some(id) = notice.case_id {
        b = b.raw_header(raw("X-Botwatch-Case", id.to_string()));
    }
    if let Some(rt) = reply_to {
        b = b.reply_to(rt.clone());
    }
    b.header(ContentType::TEXT_PLAIN)
        .body(r.text.clone())
        .map_err(|e| SendError::Permanent(format!("building message: {e}")))
}
