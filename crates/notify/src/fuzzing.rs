//! Entry points for the cargo-fuzz targets (`fuzz/fuzz_targets/notify_*.rs`), replayed on
//! stable by `tests/fuzz_corpus.rs`. Untrusted inputs here: verification tokens (from the
//! portal's URL) and notice payloads (JSON written by other versions of the case engine or
//! by hand).

use crate::render::Renderer;
use crate::{NotifyConfig, token};
use botwatch_model::Timestamp;
use botwatch_store::outbox::{Channel, NewNotice};
use std::sync::OnceLock;

pub const TARGETS: &[&str] = &["notify_token", "notify_payload"];

pub fn run(target: &str, data: &[u8]) {
    match target {
        "notify_token" => token(data),
        "notify_payload" => payload(data),
        _ => {}
    }
}

/// Any bytes as a token: never panics, and never verifies without the secret.
pub fn token(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let r = token::verify(b"fuzz-secret", &s, Timestamp::from_secs(0));
    if let Ok(c) = r {
        // Only a correctly signed token verifies; re-signing must give the same claims.
        let again = token::sign(b"fuzz-secret", &c);
        assert_eq!(token::verify(b"fuzz-secret", &again, Timestamp::from_secs(0)), Ok(c));
    }
}

/// Any bytes as a payload (JSON if it parses, else a string): renders or errors, never panics.
pub fn payload(data: &[u8]) {
    static R: OnceLock<Option<Renderer>> = OnceLock::new();
    let Some(r) = R.get_or_init(|| Renderer::new(&NotifyConfig::default()).ok()) else { return };
    let payload = serde_json::from_slice(data)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(data).into_owned()));
    let n = NewNotice {
        key: "fuzz".into(),
        message_id: "fuzz@botwatch.invalid".into(),
        kind: "case_notice".into(),
        channel: Channel::Email,
        recipient: "abuse@botwatch.invalid".into(),
        lang: payload.get("lang").and_then(|l| l.as_str()).unwrap_or("en").to_string(),
        org: None,
        case_id: None,
        payload,
        created_at: Timestamp::from_secs(0),
        due_at: Timestamp::from_secs(0),
    };
    if let Ok(out) = r.render(&n, "https://botwatch.invalid/verify?t=x") {
        assert!(!out.subject.contains(['\r', '\n']), "subject must be one line");
    }
}
