//! Notices through a real SMTP server (scripts/smtp-sink.py) from a SQLite outbox.

mod common;

use botwatch_model::{ManualClock, Timestamp};
use botwatch_notify::{NotifyConfig, Policy, Transports, drain, token};
use botwatch_store::StoreConfig;
use botwatch_store::outbox::{Channel, NoticeStatus, OutboxStore};
use botwatch_store::sqlite::SqliteStore;
use common::*;
use std::time::Duration;

fn config(url: &str) -> NotifyConfig {
    let mut cfg = NotifyConfig {
        from: "Example ISP abuse desk <abuse@isp.test>".into(),
        portal_url: "https://portal.isp.test/".into(),
        secret: SECRET.into(),
        ..NotifyConfig::default()
    };
    cfg.smtp.url = Some(url.into());
    cfg
}

// 2026-11-24 12:00 UTC: outside the default quiet hours.
const NOON: i64 = 1795521600;

#[test]
fn delivers_each_language_with_headers_and_a_verifiable_link() {
    let Some((url, spool)) = smtp_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("o.db"), StoreConfig::default()).unwrap();
    let t = tag("langs");
    let now = Timestamp::from_secs(NOON);
    let langs = [
        ("en", "Is this message genuine?"),
        ("de", "Ist diese Nachricht echt?"),
        ("nl", "Is dit bericht echt?"),
        ("ja", "このメッセージは本物ですか"),
    ];
    let notices: Vec<_> = langs
        .iter()
        .map(|(l, _)| {
            notice(
                &format!("{t}-{l}"),
                Channel::Email,
                &format!("abuse-{l}@example.net"),
                l,
                payload("first_notice", "192.0.2.10", None),
                now,
            )
        })
        .collect();
    assert_eq!(store.enqueue(&notices).unwrap(), 4);
    let clock = ManualClock::new(now);
    let tr = Transports::from_config(&config(&url)).unwrap();
    let s = drain(&mut store, &clock, &tr, &Policy::default()).unwrap();
    assert_eq!((s.due, s.sent, s.failed, s.retried), (4, 4, 0, 0), "{s:?}");
    assert!(store.due_notices(now, 10).unwrap().is_empty());
    assert_eq!(store.notices(Some(NoticeStatus::Sent), 10).unwrap().len(), 4);

    let got = wait_spooled(&spool, &t, 4, Duration::from_secs(10));
    assert_eq!(got.len(), 4, "all four arrived");
    for (lang, marker) in langs {
        let mid = format!("<{t}-{lang}@botwatch.test>");
        let m = got
            .iter()
            .find(|m| m["headers"]["Message-ID"] == mid.as_str())
            .unwrap_or_else(|| panic!("{mid}"));
        let h = &m["headers"];
        assert_eq!(h["From"], "Example ISP abuse desk <abuse@isp.test>");
        assert_eq!(h["To"], format!("abuse-{lang}@example.net"));
        assert_eq!(h["Content-Language"], lang);
        assert_eq!(h["Auto-Submitted"], "auto-generated");
        assert_eq!(h["X-Botwatch-Case"], "42");
        assert!(h["Subject"].as_str().unwrap().contains("192.0.2.10"), "{}", h["Subject"]);
        assert_eq!(m["rcpt_tos"][0], format!("abuse-{lang}@example.net"));
        let body = m["body"].as_str().unwrap();
        assert!(body.contains(marker), "{lang}: {body}");
        assert!(body.contains("2026-11-24 09:15:00 UTC"), "{lang}");
        let link =
            body.lines().find_map(|l| l.trim().strip_prefix("https://portal.isp.test/verify?t=")).unwrap();
        let claims = token::verify(SECRET.as_bytes(), link, now).unwrap();
        assert_eq!(claims.message_id, format!("{t}-{lang}@botwatch.test"));
        assert_eq!(claims.case_id, Some(42));
        assert_eq!(token::verify(b"wrong", link, now), Err(token::TokenError::Invalid));
    }
}

#[test]
fn unreachable_server_is_retried_with_backoff_then_given_up() {
    // A port that was just free: connection refused, which is transient.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("o.db"), StoreConfig::default()).unwrap();
    let now = Timestamp::from_secs(NOON);
    store
        .enqueue(&[notice(
            "down",
            Channel::Email,
            "a@example.net",
            "en",
            payload("renotify", "192.0.2.1", None),
            now,
        )])
        .unwrap();
    let clock = ManualClock::new(now);
    let tr = Transports::from_config(&config(&format!("smtp://127.0.0.1:{port}"))).unwrap();
    let policy = Policy { max_attempts: 3, backoff_base_secs: 60, ..Policy::default() };
    let s = drain(&mut store, &clock, &tr, &policy).unwrap();
    assert_eq!((s.sent, s.retried, s.failed), (0, 1, 0));
    let n = store.notice(1).unwrap().unwrap();
    assert_eq!(
        (n.attempts, n.status, n.notice.due_at),
        (1, NoticeStatus::Pending, now.saturating_add_secs(60))
    );
    clock.advance_secs(59);
    assert_eq!(drain(&mut store, &clock, &tr, &policy).unwrap().due, 0, "not before the back-off");
    clock.advance_secs(1);
    assert_eq!(drain(&mut store, &clock, &tr, &policy).unwrap().retried, 1);
    assert_eq!(store.notice(1).unwrap().unwrap().notice.due_at, clock.now_plus(120));
    clock.advance_secs(120);
    let s = drain(&mut store, &clock, &tr, &policy).unwrap();
    assert_eq!((s.retried, s.failed), (0, 1), "third attempt is the last");
    let n = store.notice(1).unwrap().unwrap();
    assert_eq!((n.attempts, n.status), (3, NoticeStatus::Failed));
    assert!(n.last_error.unwrap().contains("transient"));
}

trait Plus {
    fn now_plus(&self, s: i64) -> Timestamp;
}
impl Plus for ManualClock {
    fn now_plus(&self, s: i64) -> Timestamp {
        botwatch_model::Clock::now(self).saturating_add_secs(s)
    }
}

#[test]
fn dry_run_renders_without_sending_or_marking() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("o.db"), StoreConfig::default()).unwrap();
    let now = Timestamp::from_secs(NOON);
    store
        .enqueue(&[notice(
            "dry",
            Channel::Email,
            "a@example.net",
            "nl",
            payload("escalation", "192.0.2.1", None),
            now,
        )])
        .unwrap();
    // Port 9 (discard) on localhost is closed here; a real send would fail and be marked.
    let tr = Transports::from_config(&config("smtp://127.0.0.1:9")).unwrap();
    let s = drain(&mut store, &ManualClock::new(now), &tr, &Policy { dry_run: true, ..Policy::default() })
        .unwrap();
    assert_eq!((s.due, s.sent, s.retried, s.failed, s.previews.len()), (1, 0, 0, 0, 1));
    assert_eq!(s.previews[0].rendered.lang, "nl");
    assert!(s.previews[0].rendered.subject.contains("Actie nodig"));
    let n = store.notice(1).unwrap().unwrap();
    assert_eq!((n.attempts, n.status, n.notice.due_at), (0, NoticeStatus::Pending, now));
}
