//! Past one machine: intake publishes to NATS JetStream, three `botwatch worker` processes
//! store into one PostgreSQL, and one of them is SIGKILLed in the middle of the largest
//! report. Needs PostgreSQL (`BOTWATCH_PG_URL`) and nats-server with JetStream
//! (`BOTWATCH_NATS_URL`): skipped, saying so, without them, and a failure in CI.

mod common;
use botwatch_store::postgres::TestSchema;
use common::*;
use serde_json::Value;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn nats_url(test: &str) -> Option<String> {
    match std::env::var("BOTWATCH_NATS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("BOTWATCH_REQUIRE_PEERS").as_deref() != Ok("1"),
                "{test}: BOTWATCH_NATS_URL is not set but BOTWATCH_REQUIRE_PEERS=1 (scripts/nats/start.sh)"
            );
            eprintln!("{test}: skipped: BOTWATCH_NATS_URL is not set (scripts/nats/start.sh)");
            None
        }
    }
}

/// Peak resident memory of a process so far (VmHWM), in KiB.
fn peak_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

struct Worker {
    child: Child,
    peak: u64,
}

fn start_worker(cfg: &str, n: usize, tx: &mpsc::Sender<(usize, String)>) -> Worker {
    let mut child = bin()
        .args(["--config", cfg, "worker", "--idle-exit", "12s"])
        .env("BOTWATCH_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let tx = tx.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send((n, line));
        }
    });
    Worker { child, peak: 0 }
}

#[test]
fn three_workers_store_every_event_once_though_one_is_killed_mid_report() {
    const TEST: &str = "three_workers_store_every_event_once_though_one_is_killed_mid_report";
    let Some(schema) = TestSchema::new(TEST) else { return };
    let Some(nats) = nats_url(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let id = format!("{}{}", std::process::id(), Instant::now().elapsed().subsec_nanos());
    // One large Shadowserver report (through the object store) and six daily ones.
    let big = "2026-11-20-event4_sinkhole-test_isp-asn.csv";
    let mut files = vec![dir.path().join(big)];
    std::fs::write(
        &files[0],
        botwatch_feeds::shadowserver::synth::event4_sinkhole(120_000, 20_000, "2026-11-20", 7),
    )
    .unwrap();
    for d in 21..=26 {
        let day = format!("2026-11-{d}");
        let p = dir.path().join(format!("{day}-event4_sinkhole-test_isp-asn.csv"));
        std::fs::write(&p, botwatch_feeds::shadowserver::synth::event4_sinkhole(8_000, 2_000, &day, d))
            .unwrap();
        files.push(p);
    }
    let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let file_args: Vec<&str> = files.iter().map(String::as_str).collect();

    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = {:?}\n[nats]\nurl = {nats:?}\nstream = \"T{id}\"\nsubject = \"t{id}.reports\"\nbucket = \"t{id}\"\nconsumer = \"w{id}\"\nack_wait = \"4s\"\nmax_age = \"10m\"\n[server]\nmetrics_access = \"public\"\n",
            schema.url
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let published = json_lines(&ok(&[&["--config", cfg, "ingest", "--json"][..], &file_args].concat()));
    assert_eq!(published.len(), files.len());
    assert_eq!(published[0]["object"], true, "the large report travels through the object store");
    // Published again: JetStream drops the copies (same content within its window).
    let again = json_lines(&ok(&[&["--config", cfg, "ingest", "--json"][..], &file_args].concat()));
    assert!(again.iter().all(|p| p["duplicate"] == true), "{again:?}");

    let (tx, rx) = mpsc::channel();
    let mut workers: Vec<Worker> = (0..3).map(|n| start_worker(cfg, n, &tx)).collect();
    let mut log: Vec<(usize, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Wait until a worker is storing the large report, give it a moment into the
    // transaction, and kill it.
    let victim = loop {
        assert!(Instant::now() < deadline, "no worker took the large report: {log:#?}");
        if let Ok((n, line)) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = line.contains("storing") && line.contains(big);
            log.push((n, line));
            if hit {
                break n;
            }
        }
    };
    std::thread::sleep(Duration::from_millis(1500));
    while let Ok(l) = rx.try_recv() {
        log.push(l);
    }
    assert!(
        !log.iter().any(|(n, l)| *n == victim && l.contains(" stored") && l.contains(big)),
        "the large report was stored before the kill: make it larger"
    );
    workers[victim].peak = peak_kib(workers[victim].child.id()).unwrap_or(0);
    workers[victim].child.kill().unwrap();
    workers[victim].child.wait().unwrap();
    workers.push(start_worker(cfg, 3, &tx));
    // Every worker exits once idle; meanwhile the killed worker's delivery is given to
    // another after ack_wait.
    loop {
        assert!(Instant::now() < deadline, "workers did not finish: {log:#?}");
        for w in workers.iter_mut() {
            if let Some(k) = peak_kib(w.child.id()) {
                w.peak = w.peak.max(k);
            }
        }
        while let Ok(l) = rx.try_recv() {
            log.push(l);
        }
        if workers.iter_mut().all(|w| w.child.try_wait().unwrap().is_some()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    while let Ok(l) = rx.try_recv() {
        log.push(l);
    }
    let text: Vec<&str> = log.iter().map(|(_, l)| l.as_str()).collect();
    assert!(
        text.iter().any(|l| l.contains(" stored") && l.contains(big) && l.contains("delivered=2")),
        "the killed worker's report was delivered again and stored: {text:#?}"
    );
    // Every report once, every event once: the same figures as the same files stored
    // directly into the embedded store, in the order the workers stored them (sightings
    // merge into observations in arrival order, so the order is part of the result).
    let reports = json_lines(&ok(&["--config", cfg, "reports", "--format", "jsonl", "--limit", "100"]));
    assert_eq!(reports.len(), files.len(), "{reports:?}");
    let lite = dir.path().join("lite.toml");
    std::fs::write(&lite, format!("[store]\npath = {:?}\n", dir.path().join("ref.db"))).unwrap();
    let lite = lite.to_str().unwrap();
    for r in reports.iter().rev() {
        let name = r["name"].as_str().unwrap();
        ok(&["--config", lite, "ingest", "--quiet", &dir.path().join(name).display().to_string()]);
    }
    let want = json_lines(&ok(&["--config", lite, "stats", "--by", "feed", "--format", "jsonl"]));
    let got = json_lines(&ok(&["--config", cfg, "stats", "--by", "feed", "--format", "jsonl"]));
    assert_eq!(got, want);
    let events: u64 = got.iter().map(|r| r["events"].as_u64().unwrap()).sum();
    assert!(events >= 160_000, "{got:?}");
    let obs = |c: &str| {
        json_lines(&ok(&["--config", c, "observations", "--format", "jsonl", "--limit", "1000000"])).len()
    };
    assert_eq!(obs(cfg), obs(lite));
    // Worker health and the stream's backlog, as the workers recorded them, on /metrics of
    // a server that has no NATS client of its own.
    let (_srv, base, _) = serve(None, cfg, "http");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = reqwest::blocking::get(format!("{base}/metrics")).unwrap().text().unwrap();
    // The worker and backlog series parse in Prometheus's own client parser.
    if let Some(py) = validator_python() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &metrics).unwrap();
        eprintln!("{}", validate(&py, "prometheus", f.path()).trim());
    }
    let line = |prefix: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
            .to_string()
    };
    assert!(
        line(&format!("botwatch_stream_pending{{stream=\"T{id}\"")).ends_with(" 0"),
        "the backlog was worked off"
    );
    let runs: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("botwatch_job_runs_total{job=\"worker "))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    // Every stored delivery is a run of some worker's job; the killed worker's shows as
    // still running (it never came back to finish or be counted as failed).
    assert!(runs >= files.len() as f64, "{metrics}");
    let running: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("botwatch_job_running{job=\"worker ") && l.ends_with(" 1"))
        .collect();
    assert_eq!(running.len(), 1, "{metrics}");
    // Each worker holds one delivery at a time and parses it as a stream: a bound well
    // under the large report's 120k rows held in memory (debug build).
    for w in &workers {
        assert!(w.peak < 300 * 1024, "a worker peaked at {} MiB", w.peak / 1024);
    }
}

/// `botwatch run` with `[nats]`: what arrives (the spool, `POST /api/v1/reports`) is
/// published, unparsed, and a worker stores it.
#[test]
fn run_publishes_what_arrives_and_a_worker_stores_it() {
    const TEST: &str = "run_publishes_what_arrives_and_a_worker_stores_it";
    let Some(schema) = TestSchema::new(TEST) else { return };
    let Some(nats) = nats_url(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let id = format!("r{}{}", std::process::id(), Instant::now().elapsed().subsec_nanos());
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nurl = {:?}\n[nats]\nurl = {nats:?}\nstream = \"T{id}\"\nsubject = \"t{id}.reports\"\nbucket = \"t{id}\"\nconsumer = \"w{id}\"\nmax_age = \"10m\"\n[intake]\nspool = {:?}\nspool_every = \"1s\"\n[fetch]\narchive_dir = {:?}\n[server]\nmetrics_access = \"public\"\n",
            schema.url,
            spool,
            dir.path().join("archive"),
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let token = {
        let o = bin()
            .args(["--config", cfg, "token", "create", "--name", "feeder", "--role", "analyst", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["token"].as_str().unwrap().to_string()
    };
    let spooled = "2026-11-21-event4_sinkhole-spool-asn.csv";
    let pushed = "2026-11-22-event4_sinkhole-push-asn.csv";
    let spool_body = botwatch_feeds::shadowserver::synth::event4_sinkhole(3_000, 500, "2026-11-21", 3);
    let push_body = botwatch_feeds::shadowserver::synth::event4_sinkhole(2_000, 400, "2026-11-22", 4);
    // The reference: both stored directly into a SQLite file.
    for (n, b) in [(spooled, &spool_body), (pushed, &push_body)] {
        std::fs::write(dir.path().join(n), b).unwrap();
    }
    let lite = dir.path().join("lite.toml");
    std::fs::write(&lite, format!("[store]\npath = {:?}\n", dir.path().join("ref.db"))).unwrap();
    let lite = lite.to_str().unwrap();
    let files =
        [dir.path().join(spooled).display().to_string(), dir.path().join(pushed).display().to_string()];
    ok(&["--config", lite, "ingest", "--quiet", &files[0], &files[1]]);

    let mut run = common::Running(
        bin()
            .args(["--config", cfg, "run", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = std::io::BufReader::new(run.0.stdout.take().unwrap());
    let base = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "botwatch run ended before it served");
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break u.trim_end_matches('/').to_string();
        }
    };
    // Into the spool the way a well-behaved tool drops a file: written, then renamed.
    let part = spool.join(format!("{spooled}.part"));
    std::fs::write(&part, &spool_body).unwrap();
    let f = std::fs::File::options().write(true).open(&part).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(10)).unwrap();
    drop(f);
    std::fs::rename(&part, spool.join(spooled)).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let r = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v1/reports?name={pushed}"))
        .bearer_auth(&token)
        .body(push_body.clone())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(
        (v["published"].as_u64(), v["events"].as_u64()),
        (Some(1), Some(0)),
        "published, not stored here: {v}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while spool.join(spooled).exists() {
        assert!(Instant::now() < deadline, "the spool file was never taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(run);
    // Nothing is stored until a worker runs.
    assert!(json_lines(&ok(&["--config", cfg, "reports", "--format", "jsonl"])).is_empty());
    ok(&["--config", cfg, "worker", "--idle-exit", "3s"]);
    let reports = json_lines(&ok(&["--config", cfg, "reports", "--format", "jsonl"]));
    assert_eq!(reports.len(), 2, "{reports:?}");
    let stats = |c: &str| json_lines(&ok(&["--config", c, "stats", "--by", "day", "--format", "jsonl"]));
    assert_eq!(stats(cfg), stats(lite));
}

/// The sensors with `[nats]`: `scan` publishes what it found, and a worker stores the same
/// sightings the embedded default stores directly, once, however often they are sent.
#[test]
fn sensor_sightings_travel_through_jetstream_and_a_worker_stores_them_once() {
    const TEST: &str = "sensor_sightings_travel_through_jetstream_and_a_worker_stores_them_once";
    let Some(schema) = TestSchema::new(TEST) else { return };
    let Some(nats) = nats_url(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let id = format!("s{}{}", std::process::id(), Instant::now().elapsed().subsec_nanos());
    let direct = dir.path().join("direct.toml");
    std::fs::write(&direct, format!("[store]\nurl = {:?}\n", schema.url)).unwrap();
    let streamed = dir.path().join("streamed.toml");
    std::fs::write(
        &streamed,
        format!(
            "[store]\nurl = {:?}\n[nats]\nurl = {nats:?}\nstream = \"T{id}\"\nsubject = \"t{id}.reports\"\nbucket = \"t{id}\"\nconsumer = \"w{id}\"\nmax_age = \"10m\"\n",
            schema.url
        ),
    )
    .unwrap();
    let lite = dir.path().join("lite.toml");
    std::fs::write(&lite, format!("[store]\npath = {:?}\n", dir.path().join("ref.db"))).unwrap();
    let (direct, streamed, lite) =
        (direct.to_str().unwrap(), streamed.to_str().unwrap(), lite.to_str().unwrap());
    // Indicators from a feed, stored directly in both stores.
    let feodo = data("abusech/feodo_ipblocklist_2024-04-04.csv");
    for c in [direct, lite] {
        ok(&["--config", c, "ingest", "--quiet", feodo.to_str().unwrap()]);
    }
    let c2 = json_lines(&ok(&["--config", lite, "observations", "--type", "c2-server", "--format", "jsonl"]));
    let ip = c2.iter().find(|o| o["subject"].as_str().unwrap().parse::<std::net::IpAddr>().is_ok()).unwrap();
    let (c2_ip, seen) = (ip["subject"].as_str().unwrap(), ip["last_seen"].as_str().unwrap());
    let t = format!("{} {}.000000", seen[..10].replace('-', "/"), &seen[11..19]);
    // An infected client talks to the C2, a clean one browses (Argus flows); the Unbound
    // sample's two DGA clients give the detectors' sightings.
    let mut flows =
        String::from("StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,TotPkts,TotBytes\n");
    for i in 0..5 {
        flows.push_str(&format!("{t},0.5,tcp,10.0.0.5,{},   ->,{c2_ip},443,FSPA_FSPA,10,900\n", 40000 + i));
        flows.push_str(&format!(
            "{t},0.5,tcp,10.0.0.9,{},   ->,93.184.216.34,443,FSPA_FSPA,10,900\n",
            41000 + i
        ));
    }
    let flow_path = dir.path().join("capture.binetflow");
    std::fs::write(&flow_path, flows).unwrap();
    let dns = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../telemetry/tests/data/dns/generated_unbound/unbound_querylog_replylog.log");
    let inputs = [flow_path.to_str().unwrap(), dns.to_str().unwrap()];
    let reference = ok(&[&["--config", lite, "scan"][..], &inputs].concat());
    assert!(reference.contains("sightings stored"), "{reference}");

    let scanned = ok(&[&["--config", streamed, "scan"][..], &inputs].concat());
    assert!(scanned.contains("sightings published for a worker to store"), "{scanned}");
    // Scanned and sent again: still one report per sensor in the end.
    ok(&[&["--config", streamed, "scan"][..], &inputs].concat());
    let sensor_events = |c: &str, feed: &str| {
        let mut v: Vec<Value> =
            json_lines(&ok(&["--config", c, "events", "--feed", feed, "--format", "jsonl"]))
                .into_iter()
                .map(|mut e| {
                    // Where each store numbered it; everything the sensor said stays.
                    e.as_object_mut().unwrap().retain(|k, _| !k.starts_with("botwatch."));
                    e
                })
                .collect();
        v.sort_by_key(|e| e.to_string());
        v
    };
    for feed in ["botwatch_sensor_match", "botwatch_sensor_detect"] {
        assert!(sensor_events(direct, feed).is_empty(), "{feed}: stored before any worker ran");
    }
    ok(&["--config", streamed, "worker", "--idle-exit", "3s"]);
    for feed in ["botwatch_sensor_match", "botwatch_sensor_detect"] {
        let (got, want) = (sensor_events(direct, feed), sensor_events(lite, feed));
        assert!(!want.is_empty(), "{feed}: the reference scan found nothing");
        assert_eq!(got, want, "{feed}");
    }
    let reports = json_lines(&ok(&["--config", direct, "reports", "--format", "jsonl"]));
    assert_eq!(reports.len(), 3, "feodo and one report per sensor: {reports:?}");
}
