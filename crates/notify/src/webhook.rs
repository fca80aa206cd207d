//! Webhooks: the notice as signed JSON, POSTed.
//!
//! Receivers authenticate with `X-Botwatch-Signature: sha256=<hex HMAC-SHA256(secret,
//! "<timestamp>.<body>")>`; the timestamp is signed too so a captured request cannot be
//! replayed later with a fresh timestamp. `Idempotency-Key` is the notice's Message-ID:
//! the one request that may repeat after a crash carries the same key.

use crate::email::SendError;
use crate::render::Rendered;
use crate::{NotifyConfig, NotifyError, Result};
use botwatch_model::Timestamp;
use botwatch_store::outbox::NewNotice;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;

/// Installs rustls' ring provider once; reqwest and lettre panic without a provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `[notify.webhook]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    pub timeout_secs: u64,
    /// Signing key; defaults to `notify.secret`.
    pub secret: Option<String>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { timeout_secs: 15, secret: None }
    }
}

pub struct WebhookSender {
    client: reqwest::blocking::Client,
    secret: Vec<u8>,
}

/// `sha256=<hex>` over `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    let tag = m.finalize().into_bytes();
    let mut s = String::with_capacity(7 + 64);
    s.push_str("sha256=");
    for b in tag {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The JSON a webhook receives.
pub fn body(notice: &NewNotice, r: &Rendered, verify_url: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "message_id": notice.message_id,
        "key": notice.key,
        "kind": notice.kind,
        "case_id": notice.case_id,
        "org": notice.org,
        "lang": r.lang,
        "subject": r.subject,
        "text": r.text,
        "verify_url": verify_url,
        "payload": notice.payload,
    }))
    .unwrap_or_default()
}

impl WebhookSender {
    pub fn new(cfg: &NotifyConfig) -> Result<WebhookSender> {
        install_crypto_provider();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(cfg.webhook.timeout_secs))
            .user_agent(concat!("botwatch-notify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Config(format!("webhook client: {e}")))?;
        let secret = match &cfg.webhook.secret {
            Some(s) => botwatch_model::secret(s)
                .map_err(|e| NotifyError::Config(format!("[notify.webhook] secret: {e}")))?,
            None => cfg.secret.clone(),
        }
        .into_bytes();
        Ok(WebhookSender { client, secret })
    }

    pub fn send(&self, url: &str, body: Vec<u8>, message_id: &str, now: Timestamp) -> Result<(), SendError> {
        let ts = now.secs();
        let sig = signature(&self.secret, ts, &body);
        let resp = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("X-Botwatch-Signature", sig)
            .header("X-Botwatch-Timestamp", ts.to_string())
            .header("Idempotency-Key", message_id)
            .body(body)
            .send();
        match resp {
            Ok(r) => classify(r.status().as_u16()),
            // A URL that cannot even be requested will not get better with time.
            Err(e) if e.is_builder() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

/// 2xx sent; 408, 429 and 5xx worth retrying; any other status is a refusal.
pub fn classify(status: u16) -> Result<(), SendError> {
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(SendError::Transient(format!("HTTP {status}"))),
        _ => Err(SendError::Permanent(format!("HTTP {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(classify(204), Ok(()));
        for s in [408, 429, 500, 503] {
            assert!(matches!(classify(s), Err(SendError::Transient(_))), "{s}");
        }
        for s in [301, 400, 401, 404, 410, 422] {
            assert!(matches!(classify(s), Err(SendError::Permanent(_))), "{s}");
        }
    }

    #[test]
    fn signature_is_hmac_over_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; message assembled from the parts.
        let s = signature(b"Jefe", 0, b"what do ya want for nothing?");
        assert_eq!(s.len(), 7 + 64);
        assert_eq!(s, signature(b"Jefe", 0, b"what do ya want for nothing?"));
        assert_ne!(s, signature(b"Jefe", 1, b"what do ya want for nothing?"));
        let mut m = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        m.update(b"0.what do ya want for nothing?");
        let want: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(s, format!("sha256={want}"));
    }
}
