//! Shared helpers: notices, a real HTTP server on 127.0.0.1, the SMTP sink's spool.
#![allow(dead_code)] // each test binary uses a different subset

use botwatch_model::Timestamp;
use botwatch_store::outbox::{Channel, NewNotice};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SECRET: &str = "botwatch-test-secret";

/// A tag unique to this test run, for message ids in a shared spool.
pub fn tag(name: &str) -> String {
    let ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{name}-{}-{ns}", std::process::id())
}

pub fn payload(reason: &str, ip: &str, offset: Option<&str>) -> Value {
    json!({
        "reason": reason,
        "case": {"id": 42, "ip": ip, "threat": "emotet", "classification_type": "infected-system",
                 "first_seen": "2026-11-24T03:00:00+00:00", "last_seen": "2026-11-24T09:15:00+00:00", "level": 0,
                 "state": "notified", "evidence": 3},
        "org": {"id": "example-isp", "name": "Example ISP", "abuse_emails": ["abuse@example.net"], "lang": "en",
                "utc_offset": offset},
        "subscriber": null,
        "evidence": [{"time": "2026-11-24T03:00:00+00:00", "feed": "shadowserver_event4_sinkhole", "ip": ip,
                      "port": 49152, "classification_type": "infected-system", "malware": "emotet",
                      "destination": "198.51.100.7"}]
    })
}

pub fn notice(
    key: &str,
    channel: Channel,
    recipient: &str,
    lang: &str,
    payload: Value,
    due: Timestamp,
) -> NewNotice {
    NewNotice {
        key: key.into(),
        message_id: format!("{key}@botwatch.test"),
        kind: "case_notice".into(),
        channel,
        recipient: recipient.into(),
        lang: lang.into(),
        org: Some("example-isp".into()),
        case_id: Some(42),
        payload,
        created_at: due,
        due_at: due,
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// What the server answered.
    pub status: u16,
}

/// A real HTTP/1.1 server on 127.0.0.1 answering with scripted statuses (then 200).
pub struct HookServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub script: Arc<Mutex<VecDeque<u16>>>,
}

impl HookServer {
    pub fn start() -> HookServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (rq, sc) = (requests.clone(), script.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let status = sc.lock().unwrap().pop_front().unwrap_or(200);
                rq.lock().unwrap().push(Request { path, headers, body, status });
                let _ = write!(s, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        HookServer { url, requests, script }
    }

    pub fn respond_with(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// The SMTP sink from `scripts/smtp-sink.py`, if the environment names one.
pub fn smtp_env() -> Option<(String, std::path::PathBuf)> {
    match (std::env::var("BOTWATCH_SMTP_URL"), std::env::var("BOTWATCH_SMTP_SPOOL")) {
        (Ok(u), Ok(s)) if !u.is_empty() && !s.is_empty() => Some((u, s.into())),
        _ => {
            eprintln!("skipped: BOTWATCH_SMTP_URL / BOTWATCH_SMTP_SPOOL not set");
            None
        }
    }
}

/// Decoded messages in the spool whose Message-ID contains `tag`.
pub fn spooled(spool: &std::path::Path, tag: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(spool).unwrap().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        if v["headers"]["Message-ID"].as_str().is_some_and(|m| m.contains(tag)) {
            out.push(v);
        }
    }
    out
}

/// Waits until at least `n` messages with `tag` arrived (or the timeout passes).
pub fn wait_spooled(spool: &std::path::Path, tag: &str, n: usize, timeout: Duration) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let v = spooled(spool, tag);
        if v.len() >= n || start.elapsed() > timeout {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
