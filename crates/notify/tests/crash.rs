//! SIGKILL the sender mid-batch and restart it: every notice arrives, at most one twice.

mod common;

use botwatch_model::Timestamp;
use botwatch_store::StoreConfig;
use botwatch_store::outbox::{Channel, NoticeStatus, OutboxStore};
use botwatch_store::sqlite::SqliteStore;
use common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_batch_repeats_at_most_the_notice_in_flight() {
    let Some((url, spool)) = smtp_env() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let t = tag("crash");
    const N: usize = 50;
    {
        let mut store = SqliteStore::open(&db, StoreConfig::default()).unwrap();
        let due = Timestamp::from_secs(0);
        let notices: Vec<_> = (0..N)
            .map(|i| {
                notice(
                    &format!("{t}-{i:02}"),
                    Channel::Email,
                    &format!("abuse{i}@example.net"),
                    "en",
                    payload("first_notice", "192.0.2.77", None),
                    due,
                )
            })
            .collect();
        assert_eq!(store.enqueue(&notices).unwrap(), N as u64);
    }
    let bin = env!("CARGO_BIN_EXE_botwatch-notify-drain");
    // A short claim: the restarted sender takes over the killed one's notice in flight once
    // its lease has run out (a real deployment waits `claim_secs`, 300 s by default).
    let mut child =
        Command::new(bin).arg(&db).arg(&url).args(["--slow-ms", "100", "--claim-secs", "1"]).spawn().unwrap();
    let start = Instant::now();
    while spooled(&spool, &t).len() < 10 {
        assert!(start.elapsed() < Duration::from_secs(30), "drain made no progress");
        assert!(child.try_wait().unwrap().is_none(), "drain exited early");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = spooled(&spool, &t).len();
    assert!(before < N, "killed mid-batch ({before} of {N} arrived)");

    std::thread::sleep(Duration::from_millis(1_100));
    let out = Command::new(bin).arg(&db).arg(&url).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = wait_spooled(&spool, &t, N, Duration::from_secs(20));
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got {
        *count.entry(m["headers"]["Message-ID"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(count.len(), N, "every notice arrived");
    let repeated: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.len() <= 1 && repeated.iter().all(|(_, n)| **n == 2), "repeats: {repeated:?}");
    let store = SqliteStore::open(&db, StoreConfig::default()).unwrap();
    assert_eq!(store.notices(Some(NoticeStatus::Sent), 100).unwrap().len(), N);
    eprintln!("killed after {before} of {N}; repeated after restart: {}", repeated.len());
}
