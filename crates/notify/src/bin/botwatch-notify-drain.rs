//! Drains a botwatch outbox over SMTP until nothing is due; used by the crash test.
//!
//! `botwatch-notify-drain DB SMTP_URL [--slow-ms N] [--secret S] [--claim-secs N] [--batch N]`.
//! With `--slow-ms`, it sends one notice per drain and sleeps N ms after each, so a test can
//! kill it mid-batch. Several may run at once on one store (the concurrency test).
//! Rate limits and quiet hours are off: this drains everything that is due.

use botwatch_model::SystemClock;
use botwatch_notify::{NotifyConfig, Policy, Transports, drain};
use botwatch_store::StoreConfig;
use botwatch_store::any::AnyStore;
use botwatch_store::postgres::PgStore;
use botwatch_store::sqlite::SqliteStore;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut slow_ms = 0u64;
    let mut secret = "botwatch-test-secret".to_string();
    let mut claim_secs = 300i64;
    let mut batch = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--slow-ms" => slow_ms = it.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--secret" => secret = it.next().unwrap_or_default(),
            "--claim-secs" => claim_secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(300),
            "--batch" => batch = it.next().and_then(|v| v.parse().ok()),
            _ => pos.push(a),
        }
    }
    let [db, url] = pos.as_slice() else {
        eprintln!("usage: botwatch-notify-drain DB|POSTGRES_URL SMTP_URL [--slow-ms N] [--secret S]");
        return ExitCode::from(2);
    };
    let mut cfg = NotifyConfig { secret, ..NotifyConfig::default() };
    cfg.smtp.url = Some(url.clone());
    cfg.from = "botwatch test <abuse@botwatch.test>".into();
    let policy = Policy {
        max_per_hour: 0,
        max_per_day: 0,
        quiet_start_hour: 0,
        quiet_end_hour: 0,
        batch: batch.unwrap_or(if slow_ms > 0 { 1 } else { 200 }),
        claim_secs,
        ..Policy::default()
    };
    let run = || -> Result<u64, Box<dyn std::error::Error>> {
        // A SQLite file, or a PostgreSQL URL: the same runners against either store.
        let mut store = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            AnyStore::Postgres(Box::new(PgStore::connect(db, StoreConfig::default())?))
        } else {
            AnyStore::Sqlite(SqliteStore::open(db.as_ref(), StoreConfig::default())?)
        };
        let t = Transports::from_config(&cfg)?;
        let mut sent = 0;
        loop {
            let s = drain(&mut store, &SystemClock, &t, &policy)?;
            sent += s.sent;
            if s.due == 0 || (s.sent + s.cancelled + s.lost_claim == 0 && s.retried + s.failed == 0) {
                return Ok(sent);
            }
            if slow_ms > 0 {
                std::thread::sleep(Duration::from_millis(slow_ms));
            }
        }
    };
    match run() {
        Ok(n) => {
            println!("sent {n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
