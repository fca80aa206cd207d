//! Draining the outbox.
//!
//! Order per notice: claim → rate limit → quiet hours → render → confirm the claim → send →
//! mark. Notices are claimed with a lease ([`OutboxStore::claim_due`]), so any number of
//! runners deliver each notice once; the claim is confirmed right before the send
//! ([`OutboxStore::start_sending`]), so a notice whose case closed while it waited is
//! cancelled, not sent. A notice is marked sent right after its receiver accepted it, before
//! the next one is touched, so a crash (even SIGKILL) repeats at most the single notice in
//! flight — with the same Message-ID / Idempotency-Key, which receivers can deduplicate on. Rate limits and quiet hours *defer*
//! (not an attempt); failures count as attempts with exponential back-off up to
//! `max_attempts`, permanent refusals fail at once.

use crate::email::{Mailer, SendError};
use crate::render::{Rendered, Renderer};
use crate::token::{self, Claims};
use crate::webhook::{self, WebhookSender};
use crate::{NotifyConfig, Result};
use botwatch_model::{Clock, Timestamp};
use botwatch_store::outbox::{Channel, NewNotice, Notice, OutboxStore, SendCheck};
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
    /// Notices claimed per query.
    pub batch: u64,
    /// How long a runner's claim on a notice lasts before another runner may take it over
    /// (renewed right before each send): longer than the slowest transport's timeout.
    pub claim_secs: i64,
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
            claim_secs: 300,
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
        // Links and webhooks signed with an empty or short key could be forged by anyone.
        if cfg.secret.trim().chars().count() < 16 {
            return Err(crate::NotifyError::Config(
                "[notify] secret is empty or shorter than 16 characters: notices would carry forgeable links"
                    .into(),
            ));
        }
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
    /// Not sent: the case closed while the notice waited.
    pub cancelled: u64,
    /// Taken over by another runner before this one sent it (its claim had expired).
    pub lost_claim: u64,
    /// Left pending: no transport configured for the channel.
    pub no_transport: u64,
    /// The channels left pending for want of a transport.
    pub missing_transports: Vec<Channel>,
    pub previews: Vec<Preview>,
}

enum Outcome {
    RateLimited(Timestamp),
    Quiet(Timestamp),
    Failed(SendError),
    NoTransport,
    /// Rendered and allowed out now: confirm the claim, then send.
    Ready(Rendered, String),
}

/// Everything before the hand-over to a transport; nothing here changes the store.
fn prepare(
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
    let have_transport = match x.channel {
        Channel::Email => t.mailer.is_some(),
        Channel::Webhook => t.webhook.is_some(),
    };
    if !have_transport && !p.dry_run {
        return Ok(Outcome::NoTransport);
    }
    let verify_url = t.verify_url(x, now);
    match t.renderer.render(x, &verify_url) {
        Ok(r) => Ok(Outcome::Ready(r, verify_url)),
        // A broken template is fixed by an operator; retrying with back-off picks the fix up.
        Err(e) => Ok(Outcome::Failed(SendError::Transient(e.to_string()))),
    }
}

fn send(
    n: &Notice,
    rendered: &Rendered,
    verify_url: &str,
    t: &Transports,
    now: Timestamp,
) -> Result<(), SendError> {
    let x = &n.notice;
    match x.channel {
        Channel::Email => {
            let Some(m) = &t.mailer else { return Err(SendError::Transient("no e-mail transport".into())) };
            m.build(x, rendered, now).and_then(|msg| m.send(&msg))
        }
        Channel::Webhook => {
            let Some(w) = &t.webhook else { return Err(SendError::Transient("no webhook transport".into())) };
            w.send(&x.recipient, webhook::body(x, rendered, verify_url), &x.message_id, now)
        }
    }
}

/// A name for this runner's claims: unique per process and call.
fn runner_id(now: Timestamp) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    format!("{host}:{}:{}:{n}", std::process::id(), now.micros())
}

/// Renders what is due without claiming, sending or changing anything.
fn preview(store: &impl OutboxStore, clock: &dyn Clock, t: &Transports, p: &Policy) -> Result<DrainSummary> {
    let mut sum = DrainSummary::default();
    let now = clock.now();
    for n in store.due_notices(now, p.batch.max(1))? {
        sum.due += 1;
        match prepare(&n, now, store, t, p)? {
            Outcome::Ready(rendered, _) => sum.previews.push(Preview {
                id: n.id,
                channel: n.notice.channel,
                recipient: n.notice.recipient.clone(),
                message_id: n.notice.message_id.clone(),
                rendered,
            }),
            Outcome::RateLimited(_) => sum.deferred_rate_limit += 1,
            Outcome::Quiet(_) => sum.deferred_quiet_hours += 1,
            Outcome::Failed(_) => sum.retried += 1,
            Outcome::NoTransport => sum.no_transport += 1,
        }
    }
    Ok(sum)
}

/// Sends what is due. Store errors abort (the notice in hand stays claimed until its lease
/// ends and is then taken up again); delivery errors are recorded per notice.
pub fn drain(
    store: &mut impl OutboxStore,
    clock: &dyn Clock,
    transports: &Transports,
    policy: &Policy,
) -> Result<DrainSummary> {
    if policy.dry_run {
        return preview(store, clock, transports, policy);
    }
    let mut sum = DrainSummary::default();
    let start = clock.now();
    let runner = runner_id(start);
    let lease = policy.claim_secs.max(1);
    loop {
        // Due as of the start: what this run defers or retries later is left to the next run.
        let due =
            store.claim_due(start, policy.batch.max(1), &runner, clock.now().saturating_add_secs(lease))?;
        if due.is_empty() {
            break;
        }
        let mut stuck = false;
        for n in &due {
            sum.due += 1;
            let now = clock.now();
            let (rendered, verify_url) = match prepare(n, now, store, transports, policy)? {
                Outcome::Ready(r, u) => (r, u),
                Outcome::RateLimited(at) => {
                    store.defer(n.id, &runner, at)?;
                    sum.deferred_rate_limit += 1;
                    continue;
                }
                Outcome::Quiet(at) => {
                    store.defer(n.id, &runner, at)?;
                    sum.deferred_quiet_hours += 1;
                    continue;
                }
                Outcome::Failed(e) => {
                    fail(store, &runner, n, e, now, policy, &mut sum)?;
                    continue;
                }
                Outcome::NoTransport => {
                    store.release(n.id, &runner)?;
                    sum.no_transport += 1;
                    if !sum.missing_transports.contains(&n.notice.channel) {
                        sum.missing_transports.push(n.notice.channel);
                    }
                    stuck = true;
                    continue;
                }
            };
            match store.start_sending(n.id, &runner, now, now.saturating_add_secs(lease))? {
                SendCheck::Go => {}
                SendCheck::Cancelled => {
                    sum.cancelled += 1;
                    tracing::info!(id = n.id, case_id = ?n.notice.case_id, "Notice cancelled: its case closed before sending");
                    continue;
                }
                SendCheck::Lost => {
                    sum.lost_claim += 1;
                    tracing::warn!(id = n.id, "Notice taken over by another runner before sending");
                    continue;
                }
            }
            match send(n, &rendered, &verify_url, transports, now) {
                Ok(()) => {
                    let at = clock.now();
                    if store.mark_sent(n.id, &runner, at)? {
                        sum.sent += 1;
                        tracing::info!(id = n.id, message_id = %n.notice.message_id, recipient = %n.notice.recipient, "Notice sent");
                    } else {
                        // Only a lease that ran out during the send gets here; the other
                        // runner re-sends with the same Message-ID.
                        sum.lost_claim += 1;
                        tracing::warn!(id = n.id, message_id = %n.notice.message_id, "Notice sent, but its claim had passed to another runner");
                    }
                }
                Err(e) => fail(store, &runner, n, e, now, policy, &mut sum)?,
            }
        }
        // Notices released for want of a transport would be claimed again: stop here.
        if stuck {
            break;
        }
    }
    Ok(sum)
}

fn fail(
    store: &mut impl OutboxStore,
    runner: &str,
    n: &Notice,
    e: SendError,
    now: Timestamp,
    policy: &Policy,
    sum: &mut DrainSummary,
) -> Result<()> {
    let attempts = n.attempts + 1;
    let retry = match &e {
        SendError::Transient(_) if attempts < policy.max_attempts => {
            Some(now.saturating_add_secs(policy.backoff_secs(attempts)))
        }
        _ => None,
    };
    store.mark_failed(n.id, runner, &e.to_string(), retry)?;
    if retry.is_some() {
        sum.retried += 1;
    } else {
        sum.failed += 1;
    }
    tracing::warn!(id = n.id, message_id = %n.notice.message_id, attempts, error = %e, "Notice not delivered");
    Ok(())
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
