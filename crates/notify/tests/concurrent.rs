//! Issue 11: any number of `notify run` at once deliver each notice exactly once, and a
//! notice whose case closes while the runners work is never sent (nor recorded as sent).
//! Real processes, a real SMTP server (the sink in `BOTWATCH_SMTP_URL`), one store: a SQLite
//! file, or one PostgreSQL (`BOTWATCH_PG_URL`) the runners share as separate sessions.

mod common;

use botwatch_model::{Case, CaseState, CloseReason, Timestamp};
use botwatch_store::StoreConfig;
use botwatch_store::any::AnyStore;
use botwatch_store::cases::{CaseRecord, CaseStore};
use botwatch_store::outbox::{Channel, NoticeStatus, OutboxStore};
use botwatch_store::postgres::{PgStore, TestSchema};
use botwatch_store::sqlite::SqliteStore;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

const N: i64 = 1_200;

/// The store the runners share: a file's path or a PostgreSQL URL.
fn open(db: &str) -> AnyStore {
    if db.starts_with("postgres") {
        AnyStore::Postgres(Box::new(PgStore::connect(db, StoreConfig::default()).unwrap()))
    } else {
        AnyStore::Sqlite(SqliteStore::open(Path::new(db), StoreConfig::default()).unwrap())
    }
}

fn setup(db: &str, t: &str) {
    let mut store = open(db);
    let now = Timestamp::from_secs(1_700_000_000);
    let mut tx = store.case_tx().unwrap();
    for id in 1..=N {
        let mut c =
            Case::new(id, format!("ip:192.0.2.{id}|emotet"), "emotet".into(), "infected-system".into(), now);
        c.state = CaseState::Notified;
        tx.save(&CaseRecord { case: c, recent: vec![], next_check: Some(now) }).unwrap();
    }
    let notices: Vec<_> = (1..=N)
        .map(|id| {
            let mut n = notice(
                &format!("{t}-{id:04}"),
                Channel::Email,
                &format!("abuse{id}@example.net"),
                "en",
                payload("first_notice", "192.0.2.77", None),
                Timestamp::from_secs(0),
            );
            n.case_id = Some(id);
            n
        })
        .collect();
    assert_eq!(tx.enqueue(&notices).unwrap(), N as u64);
    tx.commit().unwrap();
}

fn runner(db: &str, url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_botwatch-notify-drain"))
        .arg(db)
        .arg(url)
        .args(["--batch", "40"])
        .spawn()
        .unwrap()
}

/// Message-ID → how many arrived.
fn arrivals(spool: &Path, t: &str) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for m in spooled(spool, t) {
        *count
            .entry(m["headers"]["Message-ID"].as_str().unwrap().trim_matches(['<', '>']).to_string())
            .or_default() += 1;
    }
    count
}

fn run(runners: usize, close_some: bool) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    run_on(&db.display().to_string(), runners, close_some, "");
}

fn run_on(db: &str, runners: usize, close_some: bool, label: &str) {
    let Some((url, spool)) = smtp_env() else { return };
    let t = tag(&format!("concurrent{runners}{label}"));
    setup(db, &t);
    let mut children: Vec<Child> = (0..runners).map(|_| runner(db, &url)).collect();
    let mut closed = 0;
    if close_some {
        // The desk closes every third case while the runners work, a few at a time.
        let mut store = open(db);
        for chunk in (1..=N).filter(|id| id % 3 == 0).collect::<Vec<_>>().chunks(10) {
            let mut tx = store.case_tx().unwrap();
            for id in chunk {
                let mut r = tx.by_id(*id).unwrap().unwrap();
                r.case.state = CaseState::Closed;
                r.case.close_reason = Some(CloseReason::Dismissed);
                r.case.closed_at = Some(Timestamp::from_secs(1_700_000_100));
                r.next_check = None;
                tx.save(&r).unwrap();
            }
            tx.commit().unwrap();
            closed += chunk.len();
            std::thread::sleep(Duration::from_millis(3));
        }
    }
    for c in &mut children {
        assert!(c.wait().unwrap().success(), "a runner failed");
    }
    let store = open(db);
    let all = store.notices(None, N as u64 * 2).unwrap();
    assert_eq!(all.len(), N as usize);
    let sent: Vec<_> = all.iter().filter(|n| n.status == NoticeStatus::Sent).collect();
    let cancelled: Vec<_> = all.iter().filter(|n| n.status == NoticeStatus::Cancelled).collect();
    assert_eq!(sent.len() + cancelled.len(), N as usize, "every notice ends sent or cancelled: none lost");
    let got = wait_spooled(&spool, &t, sent.len(), Duration::from_secs(60));
    assert!(got.len() >= sent.len());
    std::thread::sleep(Duration::from_millis(300)); // anything late would show up now
    let count = arrivals(&spool, &t);
    let dup: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "{} notices arrived more than once: {:?}", dup.len(), &dup[..dup.len().min(5)]);
    for n in &sent {
        assert_eq!(
            count.get(&n.notice.message_id),
            Some(&1),
            "sent but not received: {}",
            n.notice.message_id
        );
    }
    for n in &cancelled {
        assert!(!count.contains_key(&n.notice.message_id), "cancelled but received: {}", n.notice.message_id);
        assert!(n.notice.case_id.unwrap() % 3 == 0, "only closed cases' notices are cancelled");
    }
    assert_eq!(count.len(), sent.len(), "nothing arrived that is not recorded as sent");
    if close_some {
        eprintln!(
            "{runners} runners, {N} notices: {} sent once each, {} cancelled (of {closed} cases closed mid-run), 0 duplicates",
            sent.len(),
            cancelled.len()
        );
    } else {
        assert_eq!(sent.len(), N as usize);
        eprintln!("{runners} runners, {N} notices: each sent exactly once");
    }
}

#[test]
fn two_runners_send_each_notice_once() {
    run(2, false);
}

#[test]
fn four_runners_send_each_notice_once_and_never_a_cancelled_one() {
    run(4, true);
}

#[test]
fn four_runners_on_postgresql_send_each_notice_once_and_never_a_cancelled_one() {
    let Some(schema) = TestSchema::new("four_runners_on_postgresql") else { return };
    run_on(&schema.url, 4, true, "pg");
}
