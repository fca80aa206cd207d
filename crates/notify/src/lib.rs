//! botwatch's notifier: turns the outbox's notice *intents* into delivered messages, and
//! writes the reports and walled-garden exports an abuse desk hands to other systems.
//!
//! - [`render`]: minijinja templates per reason (`first_notice`, `renotify`, `escalation`,
//!   `walled_garden`) and language (en, de, nl, ja), embedded in the binary and overridable
//!   from a directory; remediation advice per malware family from `data/remediation.toml`.
//! - [`token`]: HMAC-signed, versioned tokens behind the `{portal_url}/verify?t=…` link in
//!   every notice, so a recipient can check a notice is genuine.
//! - [`email`] (SMTP via lettre, rustls) and [`webhook`] (signed JSON POST via reqwest).
//! - [`sender::drain`]: takes due notices, applies per-recipient rate limits and quiet hours
//!   by deferring, sends, and marks each notice sent right after the receiver accepted it,
//!   so a crash repeats at most the one message in flight — with the same Message-ID.
//! - [`reports`]: daily per-owner reports as CSV, JSON and X-ARF; pure, bytes out.
//! - [`walled_garden`]: DNS RPZ zone, nftables script and a plain address list.
//!
//! ```
//! use botwatch_notify::{NotifyConfig, render::Renderer};
//! use botwatch_store::outbox::{Channel, NewNotice};
//! use botwatch_model::Timestamp;
//! let cfg: NotifyConfig = toml::from_str("portal_url = 'https://abuse.example.net'").unwrap();
//! let renderer = Renderer::new(&cfg).unwrap();
//! let notice = NewNotice {
//!     key: "case:1:notice:1".into(), message_id: "case-1-1@abuse.example.net".into(),
//!     kind: "case_notice".into(), channel: Channel::Email, recipient: "abuse@example.com".into(),
//!     lang: "de".into(), org: None, case_id: Some(1),
//!     payload: serde_json::json!({"reason": "first_notice", "case": {"id": 1, "threat": "mirai"}}),
//!     created_at: Timestamp::from_secs(0), due_at: Timestamp::from_secs(0),
//! };
//! let r = renderer.render(&notice, "https://abuse.example.net/verify?t=x").unwrap();
//! assert_eq!(r.lang, "de");
//! assert!(r.text.contains("https://abuse.example.net/verify?t=x"));
//! ```

pub mod email;
pub mod fuzzing;
pub mod render;
pub mod reports;
pub mod sender;
pub mod token;
pub mod walled_garden;
pub mod webhook;

pub use sender::{DrainSummary, Policy, Transports, drain};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("store: {0}")]
    Store(#[from] botwatch_store::StoreError),
    #[error("template {name}: {error}")]
    Template { name: String, error: String },
    #[error("remediation data: {0}")]
    Advice(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("reading {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

pub type Result<T, E = NotifyError> = std::result::Result<T, E>;

/// The `[notify]` section of `botwatch.toml`. Every field has a default, so an empty section
/// is valid (and sends nothing until `smtp.url` or `smtp.host` is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// `From:` of every e-mail, e.g. `Example ISP abuse desk <abuse@example.net>`.
    pub from: String,
    pub reply_to: Option<String>,
    /// Base of the verification link: `{portal_url}/verify?t=<token>`.
    pub portal_url: String,
    /// Key for verification tokens and webhook signatures. Keep it secret; rotating it
    /// invalidates the links in notices already sent.
    pub secret: String,
    /// How long a verification link stays valid.
    pub token_valid_days: i64,
    /// Language used when a notice's language has no template.
    pub default_lang: String,
    /// Optional directory of `<lang>/<reason>.txt` templates replacing or adding to the
    /// embedded ones.
    pub template_dir: Option<PathBuf>,
    pub smtp: email::SmtpConfig,
    pub webhook: webhook::WebhookConfig,
    pub policy: Policy,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            from: "botwatch abuse desk <abuse@botwatch.invalid>".into(),
            reply_to: None,
            portal_url: "https://botwatch.invalid".into(),
            secret: String::new(),
            token_valid_days: 90,
            default_lang: "en".into(),
            template_dir: None,
            smtp: email::SmtpConfig::default(),
            webhook: webhook::WebhookConfig::default(),
            policy: Policy::default(),
        }
    }
}
