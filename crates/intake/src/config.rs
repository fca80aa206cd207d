//! The intake's part of `botwatch.toml`: `[fetch]`, `[[feeds]]` and `[intake]` (spool
//! directory, IMAP mailboxes, Shadowserver Reports API accounts).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// A schedule interval written as people write them: `"30s"`, `"15m"`, `"1h"`, `"1d"`,
/// `"1h 30m"` (humantime's syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Every(pub Duration);

impl Every {
    pub const fn secs(s: u64) -> Every {
        Every(Duration::from_secs(s))
    }

    pub fn as_secs(self) -> i64 {
        self.0.as_secs().min(i64::MAX as u64) as i64
    }
}

impl Serialize for Every {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let v = humantime::parse_duration(s.trim()).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a duration like \"30s\" or \"1h\": {e}"))
        })?;
        if v.is_zero() {
            return Err(serde::de::Error::custom("a schedule interval must be more than zero"));
        }
        Ok(Every(v))
    }
}

/// How long a source may stay quiet before it is shown as stale: the configured value, else
/// twice its interval plus a minute (one missed delivery is not yet an outage).
pub fn stale_after(every: Every, configured: Option<Every>) -> Every {
    configured.unwrap_or(Every(every.0 * 2 + Duration::from_secs(60)))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchSection {
    /// Raw reports (fetched files, mails, API downloads, pushed and spooled files) are
    /// archived here before parsing, so any report can be replayed.
    pub archive_dir: PathBuf,
    pub timeout_secs: u64,
    /// Attempts per feed on network errors and 5xx/429 answers.
    pub attempts: u32,
    /// First back-off; doubles per attempt.
    pub backoff_ms: u64,
    pub user_agent: String,
    /// Largest report accepted, in bytes.
    pub max_bytes: u64,
}

impl Default for FetchSection {
    fn default() -> Self {
        FetchSection {
            archive_dir: PathBuf::from("botwatch-archive"),
            timeout_secs: 60,
            attempts: 4,
            backoff_ms: 1000,
            user_agent: concat!("botwatch/", env!("CARGO_PKG_VERSION")).into(),
            max_bytes: 2 << 30,
        }
    }
}

/// A feed to fetch over HTTP(S).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSource {
    /// Feed id (`botwatch feeds`); omitted: detected from the response.
    pub feed: Option<String>,
    pub url: String,
    /// Extra request headers (API keys); a value may be `env:NAME` or `file:PATH`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// How often `botwatch run` fetches it [default: 1h].
    #[serde(default)]
    pub every: Option<Every>,
    /// Shown as stale when no new report came for this long [default: 2 × every + 1 min].
    #[serde(default)]
    pub stale_after: Option<Every>,
}

impl FeedSource {
    pub fn every(&self) -> Every {
        self.every.unwrap_or(Every::secs(3600))
    }
}

/// `[intake]`: reports that are delivered rather than fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSection {
    /// A directory other tools drop report files into (write under a temporary name that
    /// starts with `.` or ends in `.part`/`.tmp`, then rename). Each file, once ingested,
    /// moves to `DIR/.done/<day>/`; one that cannot be read at all to `DIR/.failed/` beside
    /// a `.error` note.
    pub spool: Option<PathBuf>,
    /// How often the spool is looked at.
    pub spool_every: Every,
    /// Shown as stale when no file came for this long (unset: never stale; drops are not
    /// expected on a schedule).
    pub spool_stale_after: Option<Every>,
    /// Mailboxes reports are mailed to.
    pub imap: Vec<ImapSource>,
    /// Shadowserver Reports API accounts.
    pub shadowserver: Vec<ShadowserverSource>,
}

impl Default for IntakeSection {
    fn default() -> Self {
        IntakeSection {
            spool: None,
            spool_every: Every::secs(10),
            spool_stale_after: None,
            imap: Vec::new(),
            shadowserver: Vec::new(),
        }
    }
}

/// How the IMAP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapTls {
    /// IMAPS (TLS from the first byte, port 993).
    #[default]
    Implicit,
    /// Plain IMAP upgraded with STARTTLS before logging in (port 143).
    Starttls,
    /// No TLS: allowed only to a loopback address.
    None,
}

/// `[[intake.imap]]`: one mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSource {
    /// Names the source in the dashboard and metrics [default: user@host/mailbox].
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: ImapTls,
    /// PEM file of the certificate authority to trust instead of the system's (a desk's
    /// own mail server with a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub user: String,
    /// Literal, `env:NAME` or `file:PATH`.
    pub password: String,
    #[serde(default = "inbox")]
    pub mailbox: String,
    /// Processed messages are moved here (created if missing); unset: they stay and are
    /// flagged `\Seen`, and only unseen messages are read.
    #[serde(default)]
    pub move_to: Option<String>,
    /// Feed id for every attachment; unset: detected per attachment.
    #[serde(default)]
    pub feed: Option<String>,
    #[serde(default = "five_minutes")]
    pub every: Every,
    #[serde(default)]
    pub stale_after: Option<Every>,
    /// A larger message is left in the mailbox, unread, with a warning.
    #[serde(default = "max_message_mib")]
    pub max_message_mib: u64,
}

fn inbox() -> String {
    "INBOX".into()
}
fn five_minutes() -> Every {
    Every::secs(300)
}
fn max_message_mib() -> u64 {
    64
}

impl ImapSource {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls == ImapTls::Implicit { 993 } else { 143 })
    }

    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("imap://{}@{}/{}", self.user, self.host, self.mailbox))
    }
}

/// `[[intake.shadowserver]]`: one Shadowserver Reports API account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowserverSource {
    #[serde(default = "shadowserver")]
    pub name: String,
    /// Literal, `env:NAME` or `file:PATH`.
    pub api_key: String,
    /// Literal, `env:NAME` or `file:PATH`.
    pub secret: String,
    /// The API root.
    #[serde(default = "api_root")]
    pub url: String,
    /// Only these report lists (`reports/subscribed`); unset: every list of the account.
    #[serde(default)]
    pub reports: Vec<String>,
    /// Only these report types (e.g. `event4_sinkhole`); unset: all.
    #[serde(default)]
    pub types: Vec<String>,
    /// Days back to list (Shadowserver publishes a day's reports the next morning).
    #[serde(default = "two")]
    pub days: u32,
    #[serde(default = "one_hour")]
    pub every: Every,
    #[serde(default)]
    pub stale_after: Option<Every>,
}

fn shadowserver() -> String {
    "shadowserver".into()
}
fn api_root() -> String {
    "https://transform.shadowserver.org/api2/".into()
}
fn two() -> u32 {
    2
}
fn one_hour() -> Every {
    Every::secs(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_people_write_them() {
        #[derive(Deserialize)]
        struct T {
            e: Every,
        }
        let e = |s: &str| toml::from_str::<T>(&format!("e = {s:?}")).map(|t| t.e.0);
        assert_eq!(e("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(e("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(e("2d").unwrap(), Duration::from_secs(172_800));
        assert!(e("0s").is_err() && e("soon").is_err() && e("30").is_err());
        assert_eq!(stale_after(Every::secs(60), None).0, Duration::from_secs(180));
    }
}
