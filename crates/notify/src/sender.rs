//! Draining the outbox.
//!
//! Order per notice: rate limit → quiet hours → render → send → mark. A notice is marked
//! sent right after its receiver accepted it, before the next one is touched, so a crash
//! (even SIGKILL) repeats at most the single notice in flight — with the same Message-ID /
//! Idempotency-Key, which receivers can deduplicate on. Rate limits and quiet hours *defer*
//! (not an attempt); failures count as attempts with exponential back-off up to
//! `max_attempts`, permanent refusals fail at once.

use crate::email::{Mailer, SendError};
use crate::render::{Rendered, Renderer};
use crate::token::{self, Claims};
use crate::webhook::{self, WebhookSender};
use crate::{NotifyConfig, Result};
use botwatch_model::{Clock, Timestamp};
use botwatch_store::outbox::{Channel, NewNotice, Notice, OutboxStore};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[notify.policy]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Per recipient, notices sent in the last hour; 0 = unlimited.
    pub max_per_hour: u64,
    /// Per recipient, notices sent in the last 24 hours; 0 = unlimited.
    pub max_per_day: u64,
    /// Local hour (0–23) e-mail stops; equal to `quiet_end_hour` disables quiet hours.
    pub quiet_start_hour: u8,
    /// Local hour e-mail resumes.
    pub quiet_end_hour: u8,
    /// Offset from UTC for recipients whose payload `org` carries none.
    pub default_utc_offset_minutes: i32,
    pub max_attempts: u32,
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    /// Notices fetched per query.
    pub batch: u64,
    /// Render only: nothing is sent and nothing in the store changes.
    #[serde(skip)]
    pub dry_run: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_per_hour: 20,
            max_per_day: 100,
            quiet_start_hour: 22,
            quiet_end_hour: 7,
            default_utc_offset_minutes: 0,
            max_attempts: 8,
            backoff_base_secs: 60,
            backoff_max_secs: 6 * 3600,
            batch: 200,
            dry_run: false,
        }
    }
}

impl Policy {
    /// Delay before retry number `attempts` (1-based): base·2^(attempts−1), capped.
    pub fn backoff_secs(&self, attempts: u32) -> i64 {
        let exp = attempts.saturating_sub(1).min(30);
        self.backoff_base_secs.saturating_mul(1i64 << exp).min(self.backoff_max_secs).max(1)
    }

    /// If `now` is inside quiet hours at `offset_minutes` from UTC, when they end.
    pub fn quiet_until(&self, now: Timestamp, offset_minutes: i32) -> Option<Timestamp> {
        let (start, end) = (self.quiet_start_hour as i64 % 24, self.quiet_end_hour as i64 % 24);
        if start == end {
            return None;
        }
        let sod = (now.secs() + offset_minutes as i64 * 60).rem_euclid(86_400);
        let h = sod / 3600;
        let quiet = if start < end { (start..end).contains(&h) } else { h >= start || h < end };
        quiet.then(|| Timestamp::from_secs(now.secs() + (end * 3600 - sod).rem_euclid(86_400)))
    }
}

/// Offset from UTC the payload's organisation declares: `utc_offset_minutes` (number) or
/// `utc_offset` (`+09:00`, `-0500`).
pub fn payload_offset_minutes(payload: &Value) -> Option<i32> {
    let org = payload.get("org")?;
    if let Some(m) = org.get("utc_offset_minutes").and_then(Value::as_i64) {
        return (-14 * 60..=14 * 60).contains(&m).then_some(m as i32);
    }
    let s = org.get("utc_offset")?.as_str()?.trim();
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 60 + m))
}

/// What the notifier sends with.
pub struct Transports {
    pub renderer: Renderer,
    /// `None`: e-mail notices stay pending (counted as `no_transport`).
    pub mailer: Option<Mailer>,
    pub webhook: Option<WebhookSender>,
    pub portal_url: String,
    pub secret: Vec<u8>,
    pub token_valid_days: i64,
}

impl Transports {
    pub fn from_config(cfg: &NotifyConfig) -> Result<Transports> {
        Ok(Transports {
            renderer: Renderer::new(cfg)?,
            mailer: Mailer::new(cfg)?,
            webhook: Some(WebhookSender::new(cfg)?),
            portal_url: cfg.portal_url.trim_end_matches('/').to_string(),
            secret: cfg.secret.clone().into_bytes(),
            token_valid_days: cfg.token_valid_days,
        })
    }

    /// `{portal_url}/verify?t=<token>` for this notice.
    pub fn verify_url(&self, n: &NewNotice, now: Timestamp) -> String {
        let claims = Claims {
            message_id: n.message_id.clone(),
            case_id: n.case_id,
            expires: now.secs().saturating_add(self.token_valid_days.saturating_mul(86_400)),
        };
        format!("{}/verify?t={}", self.portal_url, token::sign(&self.secret, &claims))
    }
}

/// A rendered notice in a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub id: i64,
    pub channel: Channel,
    pub recipient: String,
    pub message_id: String,
    #[serde(flatten)]
    pub rendered: Rendered,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainSummary {
    pub due: u64,
    pub sent: u64,
    pub deferred_rate_limit: u64,
    pub deferred_quiet_hours: u64,
    /// Failed attempts that will be retried.
    pub retried: u64,
    /// Given up (permanent refusal or `max_attempts` reached).
    pub failed: u64,
    /// Left pending: no transport configured for the channel.
    pub no_transport: u64,
    pub previews: Vec<Preview>,
}

enum Outcome {
    Sent,
    RateLimited(Timestamp),
    Quiet(Timestamp),
    Failed(SendError),
    NoTransport,
    Preview(Rendered),
}

fn process(
    n: &Notice,
    now: Timestamp,
    store: &impl OutboxStore,
    t: &Transports,
    p: &Policy,
) -> Result<Outcome> {
    let x = &n.notice;
    if p.max_per_hour > 0
        && store.sent_since(&x.recipient, Timestamp::from_secs(now.secs() - 3600))? >= p.max_per_hour
    {
        return Ok(Outcome::RateLimited(now.saturating_add_secs(600)));
    }
    if p.max_per_day > 0
        && store.sent_since(&x.recipient, Timestamp::from_secs(now.secs() - 86_400))? >= p.max_per_day
    {
        return Ok(Outcome::RateLimited(now.saturating_add_secs(3600)));
    }
    // Quiet hours protect people reading mail at home; machines behind webhooks do not sleep.
    if x.channel == Channel::Email {
        let off = payload_offset_minutes(&x.payload).unwrap_or(p.default_utc_offset_minutes);
        if let Some(until) = p.quiet_until(now, off) {
            return Ok(Outcome::Quiet(until));
        }
    }
    let verify_url = t.verify_url(x, now);
    let rendered = match t.renderer.render(x, &verify_url) {
        Ok(r) => r,
        // A broken template is fixed by an operator; retrying with back-off picks the fix up.
        Err(e) => return Ok(Outcome::Failed(SendError::Transient(e.to_string()))),
    };
    if p.dry_run {
        return Ok(Outcome::Preview(rendered));
    }
    let sent = match x.channel {
        Channel::Email => {
            let Some(m) = &t.mailer else { return Ok(Outcome::NoTransport) };
            m.build(x, &rendered, now).and_then(|msg| m.send(&msg))
        }
        Channel::Webhook => {
            let Some(w) = &t.webhook else { return Ok(Outcome::NoTransport) };
            w.send(&x.recipient, webhook::body(x, &rendered, &verify_url), &x.message_id, now)
        }
    };
    Ok(match sent {
        Ok(()) => Outcome::Sent,
        Err(e) => Outcome::Failed(e),
    })
}

/// Sends what is due. Store errors abort (the notice in hand stays pending and is retried on
/// the next run); delivery errors are recorded per notice.
pub fn drain(
    store: &mut impl OutboxStore,
    clock: &dyn Clock,
    transports: &Transports,
    policy: &Policy,
) -> Result<DrainSummary> {
    let mut sum = DrainSummary::default();
    let start = clock.now();
    loop {
        let due = store.due_notices(start, policy.batch.max(1))?;
        let full_page = due.len() as u64 == policy.batch.max(1);
        let mut stuck = false;
        for n in &due {
            sum.due += 1;
            let now = clock.now();
            match process(n, now, store, transports, policy)? {
                Outcome::Sent => {
                    store.mark_sent(n.id, now)?;
                    sum.sent += 1;
                    tracing::info!(id = n.id, message_id = %n.notice.message_id, recipient = %n.notice.recipient, "Notice sent");
                }
                Outcome::RateLimited(at) => {
                    store.defer(n.id, at)?;
                    sum.deferred_rate_limit += 1;
                }
                Outcome::Quiet(at) => {
                    store.defer(n.id, at)?;
                    sum.deferred_quiet_hours += 1;
                }
                Outcome::Failed(e) => {
                    let attempts = n.attempts + 1;
                    let retry = match &e {
                        SendError::Transient(_) if attempts < policy.max_attempts => {
                            Some(now.saturating_add_secs(policy.backoff_secs(attempts)))
                        }
                        _ => None,
                    };
                    store.mark_failed(n.id, &e.to_string(), retry)?;
                    if retry.is_some() {
                        sum.retried += 1;
                    } else {
                        sum.failed += 1;
                    }
                    tracing::warn!(id = n.id, message_id = %n.notice.message_id, attempts, error = %e, "Notice not delivered");
                }
                Outcome::NoTransport => {
                    sum.no_transport += 1;
                    stuck = true;
                }
                Outcome::Preview(rendered) => {
                    sum.previews.push(Preview {
                        id: n.id,
                        channel: n.notice.channel,
                        recipient: n.notice.recipient.clone(),
                        message_id: n.notice.message_id.clone(),
                        rendered,
                    });
                }
            }
        }
        // A dry run or a notice left pending would be fetched again: stop after one page.
        if !full_page || stuck || policy.dry_run {
            break;
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quiet_hours_wrap_midnight_and_honour_offsets() {
        let p = Policy::default(); // 22–07
        let day = 20_000 * 86_400;
        let at = |h: i64, m: i64| Timestamp::from_secs(day + h * 3600 + m * 60);
        assert_eq!(p.quiet_until(at(12, 0), 0), None);
        assert_eq!(p.quiet_until(at(22, 0), 0), Some(at(31, 0)));
        assert_eq!(p.quiet_until(at(3, 30), 0), Some(at(7, 0)));
        assert_eq!(p.quiet_until(at(7, 0), 0), None);
        // 14:00 UTC is 23:00 in Tokyo: quiet until 07:00 JST = 22:00 UTC.
        assert_eq!(p.quiet_until(at(14, 0), 9 * 60), Some(at(22, 0)));
        // 03:00 UTC is 22:00 the day before in New York (UTC−5).
        assert_eq!(p.quiet_until(at(3, 0), -300), Some(at(12, 0)));
        let off = Policy { quiet_start_hour: 5, quiet_end_hour: 5, ..Policy::default() };
        assert_eq!(off.quiet_until(at(5, 0), 0), None);
    }

    #[test]
    fn offsets_from_the_payload() {
        assert_eq!(payload_offset_minutes(&json!({"org": {"utc_offset": "+09:00"}})), Some(540));
        assert_eq!(payload_offset_minutes(&json!({"org": {"utc_offset": "-0530"}})), Some(-330));
        assert_eq!(payload_offset_minutes(&json!({"org": {"utc_offset_minutes": 60}})), Some(60));
        for bad in [
            json!({}),
            json!({"org": null}),
            json!({"org": {"utc_offset": "9"}}),
            json!({"org": {"utc_offset_minutes": 99999}}),
        ] {
            assert_eq!(payload_offset_minutes(&bad), None, "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = Policy::default();
        assert_eq!((p.backoff_secs(1), p.backoff_secs(2), p.backoff_secs(3)), (60, 120, 240));
        assert_eq!(p.backoff_secs(40), 6 * 3600);
    }
}
