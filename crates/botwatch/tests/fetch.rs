//! `botwatch fetch` against a real HTTP server on 127.0.0.1: conditional GET, retry with
//! back-off, archive before parse.

use botwatch::config::{FeedSource, FetchSection};
use botwatch::fetch::Fetcher;
use botwatch::pipeline::Ingestor;
use botwatch_model::{FamilyTable, ManualClock, Timestamp};
use botwatch_store::{Store, StoreConfig, sqlite::SqliteStore};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const FEODO: &str = include_str!("../../feeds/tests/data/abusech/feodo_ipblocklist_2024-04-04.csv");

/// A tiny HTTP/1.1 server: answers each request from a script of responses and records
/// the request headers it saw.
/// (status, headers, body) of one scripted response.
type Response = (u16, Vec<(&'static str, String)>, String);

fn serve(script: Vec<Response>) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for (status, headers, body) in script {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut req = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                req.push_str(&line);
            }
            seen2.lock().unwrap().push(req);
            let mut resp =
                format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
            for (k, v) in headers {
                resp.push_str(&format!("{k}: {v}\r\n"));
            }
            resp.push_str("\r\n");
            resp.push_str(&body);
            let _ = s.write_all(resp.as_bytes());
            let _ = s.flush();
            let mut rest = Vec::new();
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(10)));
            let _ = r.read_to_end(&mut rest);
        }
    });
    (format!("http://{addr}/downloads/ipblocklist.csv"), seen)
}

#[test]
fn conditional_get_retries_and_archive() {
    let dir = tempfile::tempdir().unwrap();
    let etag = ("ETag", "\"v1\"".to_string());
    let (url, seen) = serve(vec![
        (503, vec![("Retry-After", "0".into())], "busy".into()),
        (200, vec![etag.clone(), ("Last-Modified", "Thu, 04 Apr 2024 07:03:03 GMT".into())], FEODO.into()),
        (304, vec![etag], String::new()),
    ]);
    let cfg = FetchSection {
        archive_dir: dir.path().join("archive"),
        backoff_ms: 10,
        attempts: 3,
        ..Default::default()
    };
    let clock = ManualClock::new(Timestamp::from_secs(1_800_000_000));
    let fetcher = Fetcher::new(&cfg, &clock).unwrap();
    let mut store = SqliteStore::open(&dir.path().join("f.db"), StoreConfig::default()).unwrap();
    let registry = botwatch_feeds::registry::Registry::builtin();
    let ipdb = botwatch_enrich::IpDb::builtin();
    let families = FamilyTable::default();
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: Default::default(),
        publish: None,
    };
    let src = FeedSource {
        feed: None,
        url: url.clone(),
        headers: Default::default(),
        every: None,
        stale_after: None,
    };

    let first = fetcher.fetch(&src, &mut store, &ing);
    assert_eq!(first.error, None);
    assert_eq!(first.attempts, 2, "503 then 200");
    assert_eq!(first.status, "ingested");
    assert_eq!(first.reports[0].feed, "abusech_feodo_csv", "detected from the body");
    let archived = first.archived.clone().unwrap();
    assert_eq!(std::fs::read_to_string(&archived).unwrap(), FEODO, "raw report archived as received");
    let events = store.counts().unwrap().events;
    assert!(events > 10);

    let second = fetcher.fetch(&src, &mut store, &ing);
    assert_eq!(second.status, "not modified");
    assert_eq!(store.counts().unwrap().events, events);
    let reqs = seen.lock().unwrap();
    assert_eq!(reqs.len(), 3);
    assert!(reqs[2].to_ascii_lowercase().contains("if-none-match: \"v1\""), "{}", reqs[2]);
    assert!(reqs[2].to_ascii_lowercase().contains("if-modified-since: thu, 04 apr 2024"), "{}", reqs[2]);
    let state = store.fetch_state(&url).unwrap().unwrap();
    assert_eq!(state.etag.as_deref(), Some("\"v1\""));
}

#[test]
fn client_errors_are_not_retried_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (url, seen) = serve(vec![(404, vec![], "no".into())]);
    let cfg =
        FetchSection { archive_dir: dir.path().join("a"), backoff_ms: 10, attempts: 5, ..Default::default() };
    let clock = ManualClock::new(Timestamp::from_secs(0));
    let fetcher = Fetcher::new(&cfg, &clock).unwrap();
    let mut store = SqliteStore::open_in_memory(StoreConfig::default()).unwrap();
    let registry = botwatch_feeds::registry::Registry::builtin();
    let ipdb = botwatch_enrich::IpDb::builtin();
    let families = FamilyTable::default();
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: Default::default(),
        publish: None,
    };
    let out = fetcher.fetch(
        &FeedSource {
            feed: Some("abusech_feodo_csv".into()),
            url,
            headers: Default::default(),
            every: None,
            stale_after: None,
        },
        &mut store,
        &ing,
    );
    assert_eq!(out.attempts, 1);
    assert!(out.error.unwrap().contains("404"));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[test]
fn unreachable_server_gives_up_after_the_configured_attempts() {
    // Bind then drop: nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = FetchSection {
        archive_dir: dir.path().join("a"),
        backoff_ms: 5,
        attempts: 3,
        timeout_secs: 5,
        ..Default::default()
    };
    let clock = ManualClock::new(Timestamp::from_secs(0));
    let fetcher = Fetcher::new(&cfg, &clock).unwrap();
    let mut store = SqliteStore::open_in_memory(StoreConfig::default()).unwrap();
    let registry = botwatch_feeds::registry::Registry::builtin();
    let ipdb = botwatch_enrich::IpDb::builtin();
    let families = FamilyTable::default();
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: Default::default(),
        publish: None,
    };
    let src = FeedSource {
        feed: None,
        url: format!("http://127.0.0.1:{port}/x.csv"),
        headers: Default::default(),
        every: None,
        stale_after: None,
    };
    let out = fetcher.fetch(&src, &mut store, &ing);
    assert_eq!(out.attempts, 3);
    assert!(out.error.unwrap().contains("giving up"));
}
