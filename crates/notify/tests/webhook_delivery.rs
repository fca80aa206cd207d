//! Webhooks against a real HTTP server on 127.0.0.1; rate limits, quiet hours and "never
//! twice for one key" with a manual clock.

mod common;

use botwatch_model::{ManualClock, Timestamp};
use botwatch_notify::webhook::signature;
use botwatch_notify::{NotifyConfig, Policy, Transports, drain, token};
use botwatch_store::StoreConfig;
use botwatch_store::outbox::{Channel, NoticeStatus, OutboxStore};
use botwatch_store::sqlite::SqliteStore;
use common::*;
use std::collections::BTreeMap;

const NOON: i64 = 1_795_521_600; // 2026-11-24T12:00:00Z

fn transports(smtp: Option<&str>) -> Transports {
    let mut cfg = NotifyConfig {
        secret: SECRET.into(),
        portal_url: "https://portal.isp.test".into(),
        ..Default::default()
    };
    cfg.smtp.url = smtp.map(str::to_string);
    Transports::from_config(&cfg).unwrap()
}

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("o.db"), StoreConfig::default()).unwrap();
    (dir, s)
}

#[test]
fn signed_post_with_idempotency_key_and_rendered_text() {
    let srv = HookServer::start();
    let (_d, mut store) = store();
    let now = Timestamp::from_secs(NOON);
    store
        .enqueue(&[notice(
            "wh1",
            Channel::Webhook,
            &srv.url,
            "de",
            payload("walled_garden", "2001:db8::7", None),
            now,
        )])
        .unwrap();
    let s = drain(&mut store, &ManualClock::new(now), &transports(None), &Policy::default()).unwrap();
    assert_eq!(s.sent, 1, "{s:?}");
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.headers["idempotency-key"], "wh1@botwatch.test");
    assert_eq!(r.headers["x-botwatch-timestamp"], NOON.to_string());
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-botwatch-signature"], signature(SECRET.as_bytes(), NOON, &r.body));
    assert_ne!(r.headers["x-botwatch-signature"], signature(b"other", NOON, &r.body));
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["message_id"], "wh1@botwatch.test");
    assert_eq!(v["lang"], "de");
    assert!(v["subject"].as_str().unwrap().contains("eingeschränkt"));
    assert_eq!(v["payload"]["case"]["ip"], "2001:db8::7");
    let link = v["verify_url"].as_str().unwrap().strip_prefix("https://portal.isp.test/verify?t=").unwrap();
    assert_eq!(token::verify(SECRET.as_bytes(), link, now).unwrap().message_id, "wh1@botwatch.test");
    assert_eq!(store.notice(1).unwrap().unwrap().status, NoticeStatus::Sent);
}

#[test]
fn statuses_decide_retry_or_give_up() {
    let srv = HookServer::start();
    // 500 → retry, 429 → retry, 200 → sent; 404 → permanent; 408 → retry then 410 → permanent.
    srv.respond_with(&[500, 404, 408]);
    let (_d, mut store) = store();
    let now = Timestamp::from_secs(NOON);
    let url = |k: &str| format!("{}?{k}", srv.url);
    store
        .enqueue(&[
            notice("a", Channel::Webhook, &url("a"), "en", payload("renotify", "192.0.2.1", None), now),
            notice("b", Channel::Webhook, &url("b"), "en", payload("renotify", "192.0.2.2", None), now),
            notice("c", Channel::Webhook, &url("c"), "en", payload("renotify", "192.0.2.3", None), now),
        ])
        .unwrap();
    let clock = ManualClock::new(now);
    let tr = transports(None);
    let p = Policy::default();
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!((s.sent, s.retried, s.failed), (0, 2, 1), "{s:?}");
    let b = store.notice(2).unwrap().unwrap();
    assert_eq!((b.status, b.last_error.as_deref()), (NoticeStatus::Failed, Some("permanent: HTTP 404")));
    srv.respond_with(&[429, 410]);
    clock.advance_secs(60);
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!((s.sent, s.retried, s.failed), (0, 1, 1), "{s:?}");
    let a = store.notice(1).unwrap().unwrap();
    assert_eq!((a.attempts, a.notice.due_at), (2, clock_now(&clock).saturating_add_secs(120)));
    clock.advance_secs(120);
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!(s.sent, 1);
    assert_eq!(store.notice(1).unwrap().unwrap().status, NoticeStatus::Sent);
    assert_eq!(store.notice(3).unwrap().unwrap().status, NoticeStatus::Failed);
    assert_eq!(srv.requests().len(), 6);
}

fn clock_now(c: &ManualClock) -> Timestamp {
    botwatch_model::Clock::now(c)
}

#[test]
fn rate_limit_per_recipient_defers_and_resumes() {
    let srv = HookServer::start();
    let (_d, mut store) = store();
    let now = Timestamp::from_secs(NOON);
    let n: Vec<_> = (0..5)
        .map(|i| {
            notice(
                &format!("r{i}"),
                Channel::Webhook,
                &srv.url,
                "en",
                payload("first_notice", "192.0.2.9", None),
                now,
            )
        })
        .chain([notice(
            "other",
            Channel::Webhook,
            &format!("{}?other", srv.url),
            "en",
            payload("first_notice", "192.0.2.8", None),
            now,
        )])
        .collect();
    store.enqueue(&n).unwrap();
    let clock = ManualClock::new(now);
    let tr = transports(None);
    let p = Policy { max_per_hour: 2, max_per_day: 3, ..Policy::default() };
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!((s.sent, s.deferred_rate_limit), (3, 3), "2 to the limited recipient + 1 to another: {s:?}");
    clock.advance_secs(600);
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!((s.due, s.sent, s.deferred_rate_limit), (3, 0, 3), "hour not over yet");
    clock.advance_secs(3000 + 1);
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!((s.sent, s.deferred_rate_limit), (1, 2), "daily cap of 3 reached: {s:?}");
    clock.advance_secs(86_400);
    let s = drain(&mut store, &clock, &tr, &p).unwrap();
    assert_eq!(s.sent, 2);
    assert_eq!(srv.requests().len(), 6);
    assert_eq!(store.notices(Some(NoticeStatus::Pending), 10).unwrap().len(), 0);
}

#[test]
fn quiet_hours_hold_email_in_the_recipients_local_night_but_not_webhooks() {
    let srv = HookServer::start();
    let (_d, mut store) = store();
    let late = Timestamp::from_secs(NOON + 11 * 3600); // 23:00 UTC
    store
        .enqueue(&[
            notice(
                "q-utc",
                Channel::Email,
                "a@example.net",
                "en",
                payload("first_notice", "192.0.2.1", None),
                late,
            ),
            // 23:00 UTC is 08:00 in Tokyo: not quiet there.
            notice(
                "q-jst",
                Channel::Email,
                "b@example.net",
                "ja",
                payload("first_notice", "192.0.2.2", Some("+09:00")),
                late,
            ),
            notice(
                "q-hook",
                Channel::Webhook,
                &srv.url,
                "en",
                payload("first_notice", "192.0.2.3", None),
                late,
            ),
        ])
        .unwrap();
    let clock = ManualClock::new(late);
    // The SMTP sink if there is one; otherwise a closed port (the JST mail then retries).
    let smtp = common::smtp_env().map(|(u, _)| u).unwrap_or_else(|| "smtp://127.0.0.1:9".into());
    let tr = transports(Some(&smtp));
    let s = drain(&mut store, &clock, &tr, &Policy::default()).unwrap();
    assert_eq!(s.deferred_quiet_hours, 1, "{s:?}");
    assert_eq!(s.sent + s.retried, 2, "{s:?}");
    let q = store.notice(1).unwrap().unwrap();
    assert_eq!((q.status, q.attempts), (NoticeStatus::Pending, 0), "deferral is not an attempt");
    assert_eq!(q.notice.due_at, Timestamp::from_secs(NOON + 19 * 3600), "07:00 UTC next day");
    assert_eq!(store.notice(3).unwrap().unwrap().status, NoticeStatus::Sent);
    clock.set(Timestamp::from_secs(NOON + 19 * 3600));
    let s = drain(&mut store, &clock, &tr, &Policy::default()).unwrap();
    assert_eq!(s.deferred_quiet_hours, 0);
    assert!(s.due >= 1);
}

/// Random interleavings of enqueue (with repeated keys), drain, clock steps and receiver
/// hiccups: no key is ever delivered twice, and in the end every key is delivered once.
mod never_twice {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue(u8),
        Drain,
        Advance(u16),
        Hiccup(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..12).prop_map(Op::Enqueue),
            2 => Just(Op::Drain),
            1 => (1u16..4000).prop_map(Op::Advance),
            1 => prop_oneof![Just(500u16), Just(503), Just(429), Just(408)].prop_map(Op::Hiccup),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn one_delivery_per_key(ops in proptest::collection::vec(op(), 1..40)) {
            let srv = HookServer::start();
            let (_d, mut store) = store();
            let clock = ManualClock::new(Timestamp::from_secs(NOON));
            let tr = transports(None);
            let p = Policy { max_per_hour: 0, max_per_day: 0, max_attempts: 1000, backoff_base_secs: 10, backoff_max_secs: 100, ..Policy::default() };
            let mut keys = std::collections::BTreeSet::new();
            for op in ops {
                match op {
                    Op::Enqueue(k) => {
                        keys.insert(k);
                        let now = clock_now(&clock);
                        store.enqueue(&[notice(&format!("k{k}"), Channel::Webhook, &srv.url, "en", payload("first_notice", "192.0.2.1", None), now)]).unwrap();
                    }
                    Op::Drain => { drain(&mut store, &clock, &tr, &p).unwrap(); }
                    Op::Advance(s) => clock.advance_secs(s as i64),
                    Op::Hiccup(s) => srv.respond_with(&[s]),
                }
            }
            srv.script.lock().unwrap().clear();
            clock.advance_secs(1000);
            drain(&mut store, &clock, &tr, &p).unwrap();
            let mut delivered: BTreeMap<String, usize> = BTreeMap::new();
            for r in srv.requests().iter().filter(|r| (200..300).contains(&r.status)) {
                *delivered.entry(r.headers["idempotency-key"].clone()).or_default() += 1;
            }
            prop_assert!(delivered.values().all(|&n| n == 1), "{:?}", delivered);
            prop_assert_eq!(delivered.len(), keys.len());
            prop_assert_eq!(store.notices(Some(NoticeStatus::Sent), 100).unwrap().len(), keys.len());
        }
    }
}
