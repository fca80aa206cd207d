//! `botwatch run` as an operator runs it: reports arrive by mail (a real Dovecot), over HTTP
//! (a real server) and into the spool; events are stored, cases opened, notices delivered to
//! the real SMTP sink and each job's success shows on `/metrics`; a SIGKILL mid-ingest
//! loses nothing and counts nothing twice; a feed that stops shows as stale; SIGTERM exits
//! 0 within 10 s; systemd hears READY, RELOADING and STOPPING; the Shadowserver Reports API
//! client signs its requests as Shadowserver documents (checked by an independent server).
//!
//! The peers come from `.ci/run` (`BOTWATCH_IMAP_*`, `BOTWATCH_SMTP_*`); there, a missing one
//! is a failure (`BOTWATCH_REQUIRE_PEERS=1`); elsewhere the tests that need it skip.

mod common;

use common::{Running, bin, ok};
use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Imap {
    host: String,
    port: String,
    user: String,
    password: String,
    ca: String,
}

fn imap_env() -> Option<Imap> {
    let v = |k: &str| std::env::var(k).ok();
    match (
        v("BOTWATCH_IMAP_HOST"),
        v("BOTWATCH_IMAPS_PORT"),
        v("BOTWATCH_IMAP_USER"),
        v("BOTWATCH_IMAP_PASSWORD"),
        v("BOTWATCH_IMAP_CA"),
    ) {
        (Some(host), Some(port), Some(user), Some(password), Some(ca)) => {
            Some(Imap { host, port, user, password, ca })
        }
        _ => {
            assert!(
                v("BOTWATCH_REQUIRE_PEERS").as_deref() != Some("1"),
                "BOTWATCH_REQUIRE_PEERS=1 but no IMAP server (scripts/dovecot/start.sh sets BOTWATCH_IMAP_*)"
            );
            eprintln!("skipped: no IMAP server (run scripts/dovecot/start.sh and export what it prints)");
            None
        }
    }
}

fn smtp_env() -> Option<(String, PathBuf)> {
    match (std::env::var("BOTWATCH_SMTP_URL"), std::env::var("BOTWATCH_SMTP_SPOOL")) {
        (Ok(u), Ok(s)) => Some((u, PathBuf::from(s))),
        _ => {
            assert!(
                std::env::var("BOTWATCH_REQUIRE_PEERS").as_deref() != Ok("1"),
                "under .ci/run the SMTP sink must be there (BOTWATCH_SMTP_URL, BOTWATCH_SMTP_SPOOL)"
            );
            eprintln!("skipped: no SMTP sink (BOTWATCH_SMTP_URL, BOTWATCH_SMTP_SPOOL)");
            None
        }
    }
}

fn yesterday() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    botwatch_model::Timestamp::from_secs(now - 86_400).day()
}

/// A synthetic Shadowserver sinkhole report of yesterday.
fn synth(rows: &str, infected: &str, seed: &str) -> String {
    ok(&["synth", "--rows", rows, "--infected", infected, "--day", &yesterday(), "--seed", seed])
}

/// Serves `body` at any path: `200` with an ETag (and `304` to a matching If-None-Match)
/// the first `serve_times` requests, then `404`. Returns the base URL and a request counter.
fn http_feed(body: String, serve_times: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let n = h.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
            let resp = if n >= serve_times {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
            } else if text.contains("if-none-match: \"v1\"") {
                "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n".to_string()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (base, hits)
}

/// Creates `mailbox` and appends a Shadowserver-style mail carrying `csv` as an attachment
/// (Python's imaplib and email package: an independent client).
fn mail_report(imap: &Imap, mailbox: &str, file_name: &str, csv: &str) {
    let script = r#"
import imaplib, ssl, sys
from email.message import EmailMessage
host, port, user, pw, ca, box, name, path = sys.argv[1:9]
m = EmailMessage()
m["From"] = "Shadowserver <autoreports@shadowserver.org>"
m["To"] = "cert@example.org"
m["Subject"] = "[Shadowserver] Sinkhole Events Report"
m["Message-ID"] = "<%s@botwatch.test>" % box
m.set_content("Please find attached today's report.")
m.add_attachment(open(path, "rb").read(), maintype="text", subtype="csv", filename=name)
c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ssl.create_default_context(cafile=ca))
c.login(user, pw)
c.create(box)
typ, _ = c.append(box, None, None, m.as_bytes())
assert typ == "OK", typ
c.logout()
"#;
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), csv).unwrap();
    let o = Command::new("python3")
        .args([
            "-c",
            script,
            &imap.host,
            &imap.port,
            &imap.user,
            &imap.password,
            &imap.ca,
            mailbox,
            file_name,
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "appending the mail: {}", String::from_utf8_lossy(&o.stderr));
}

/// Messages in `mailbox` (Python's imaplib).
fn mailbox_count(imap: &Imap, mailbox: &str) -> usize {
    let script = r#"
import imaplib, ssl, sys
host, port, user, pw, ca, box = sys.argv[1:7]
c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ssl.create_default_context(cafile=ca))
c.login(user, pw)
typ, data = c.select(box, readonly=True)
print(int(data[0]))
c.logout()
"#;
    let o = Command::new("python3")
        .args(["-c", script, &imap.host, &imap.port, &imap.user, &imap.password, &imap.ca, mailbox])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Drops a file into the spool the way a well-behaved tool does: written under a temporary
/// name, dated back past the spool's settling time, then renamed.
fn drop_into(spool: &Path, name: &str, body: &str) {
    let part = spool.join(format!("{name}.part"));
    std::fs::write(&part, body).unwrap();
    let f = std::fs::File::options().write(true).open(&part).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(10)).unwrap();
    drop(f);
    std::fs::rename(&part, spool.join(name)).unwrap();
}

/// Starts `botwatch --config CFG run --listen 127.0.0.1:0`; with `serving`, waits for the web
/// side's announcement and returns its base URL.
fn start_run(cfg: &str, env: &[(&str, &str)], serving: bool) -> (Running, Option<String>) {
    let mut cmd = bin();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["--config", cfg, "--log", "info", "run", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("BOTWATCH_TEST_SHOW_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut base = None;
    let mut summary = false;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("botwatch run ended before it was ready");
        }
        if line.contains("serving on")
            && let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://"))
        {
            base = Some(u.trim_end_matches('/').to_string());
        }
        // The jobs' summary and the web side's announcement come in either order.
        summary |= line.starts_with("botwatch run:");
        if summary && (!serving || base.is_some()) {
            break;
        }
    }
    // Keep reading stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    (Running(child), base)
}

fn db(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn count(path: &Path, sql: &str) -> i64 {
    db(path).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Polls `f` until it returns `Some`, or fails after `secs` with `what`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &std::process::Child, sig: &str) {
    let s = Command::new("kill").args([&format!("-{sig}"), &child.id().to_string()]).status().unwrap();
    assert!(s.success());
}

/// SIGTERM, then the exit status within 10 s.
fn terminate(r: Running) -> std::process::ExitStatus {
    signal(&r.0, "TERM");
    exited_within_10s(r)
}

/// The exit status, which must come within 10 s (of the SIGTERM just sent).
fn exited_within_10s(mut r: Running) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = r.0.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "botwatch run did not exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client() -> reqwest::blocking::Client {
    // reqwest is built without a default TLS provider (ring is installed explicitly).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// An analyst's API token, made with `botwatch token create` (which also makes the store).
fn analyst_token(cfg: &str, name: &str) -> String {
    let o = bin()
        .args(["--config", cfg, "token", "create", "--name", name, "--role", "analyst", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice::<Value>(&o.stdout).unwrap()["token"].as_str().unwrap().to_string()
}

fn metrics(base: &str) -> String {
    client().get(format!("{base}/metrics")).send().unwrap().text().unwrap()
}

/// What the runner recorded, for a failing test's message.
fn jobs_dump(path: &Path) -> String {
    let c = db(path);
    let mut out = String::new();
    for sql in [
        "SELECT name || ': runs ' || runs || ', failures ' || failures || ', last error ' || coalesce(last_error, '-') || ', last ' || coalesce(last_detail, '-') FROM jobs",
        "SELECT name || ': reports ' || reports || ', last error ' || coalesce(last_error, '-') FROM intake_sources",
    ] {
        let mut st = c.prepare(sql).unwrap();
        for r in st.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            out.push_str(&r.unwrap());
            out.push('\n');
        }
    }
    out
}

/// The value of one sample of `/metrics`, e.g. `metric_value(m, "botwatch_open_cases")`.
fn metric_value(m: &str, series: &str) -> Option<f64> {
    m.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// Messages in the SMTP sink sent to `domain`, as (Message-ID, count).
fn sink_messages(spool: &Path, tag: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(spool).unwrap().flatten() {
        if e.path().extension().is_some_and(|x| x == "json")
            && let Ok(t) = std::fs::read_to_string(e.path())
            && t.contains(tag)
            && let Ok(v) = serde_json::from_str::<Value>(&t)
            && let Some(id) = v["headers"]["Message-ID"].as_str()
        {
            *out.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn run_takes_mail_http_and_spool_through_to_notices_and_survives_sigkill() {
    let (Some(imap), Some((smtp, sink))) = (imap_env(), smtp_env()) else { return };
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let s = |n: &str| p(n).to_str().unwrap().to_string();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let tag = format!("run{}x{nanos}", std::process::id());
    let day = yesterday();
    let (mail_csv, http_csv, spool_csv) =
        (synth("300", "60", "11"), synth("300", "60", "21"), synth("300", "60", "31"));
    let (mail_name, http_name, spool_name) = (
        format!("{day}-event4_sinkhole-mail-geo.csv"),
        format!("{day}-event4_sinkhole-http-geo.csv"),
        format!("{day}-event4_sinkhole-spool-geo.csv"),
    );
    let (feed_base, _hits) = http_feed(http_csv.clone(), usize::MAX);
    let feed_url = format!("{feed_base}/{http_name}");
    let mailbox = format!("reports-{tag}");
    mail_report(&imap, &mailbox, &mail_name, &mail_csv);
    let spool = p("spool");
    std::fs::create_dir_all(&spool).unwrap();
    drop_into(&spool, &spool_name, &spool_csv);
    // The desk's constituency: one ISP with the Frankfurt network the synthetic reports use.
    std::fs::write(
        p("constituency.toml"),
        format!("[[org]]\nid = \"test-isp\"\nname = \"Test ISP\"\nkind = \"isp\"\nnetworks = [\"79.192.0.0/16\"]\nabuse_emails = [\"abuse@{tag}.test\"]\n"),
    )
    .unwrap();
    let common_cfg = format!(
        "[constituency]\nfile = {cons:?}\n\n[cases]\nnotify_delay_minutes = 0\nmessage_domain = \"{tag}.test\"\n\n[notify]\nfrom = \"Test CERT <cert@cert.test>\"\nsecret = \"4f1d9a7c2b6e8d0f3a5c7e9b1d3f5a7c\"\nportal_url = \"https://selfcheck.cert.test\"\n\n[notify.policy]\nquiet_start_hour = 0\nquiet_end_hour = 0\nmax_per_hour = 0\nmax_per_day = 0\n\n[notify.smtp]\nurl = {smtp:?}\n",
        cons = s("constituency.toml"),
    );
    let cfg = format!(
        "[store]\npath = {db:?}\n\n[fetch]\narchive_dir = {arch:?}\nattempts = 1\n\n[[feeds]]\nurl = {feed_url:?}\nevery = \"1s\"\n\n[intake]\nspool = {spool:?}\nspool_every = \"1s\"\n\n[[intake.imap]]\nname = \"cert-mailbox\"\nhost = {host:?}\nport = {port}\ntls = \"implicit\"\nca_file = {ca:?}\nuser = {user:?}\npassword = \"env:BOTWATCH_TEST_IMAP_PASSWORD\"\nmailbox = {mailbox:?}\nmove_to = \"{mailbox}-done\"\nevery = \"1s\"\n\n[run]\ncases_every = \"1s\"\nnotify_every = \"1s\"\n\n[server]\nmetrics_access = \"public\"\n\n{common_cfg}",
        db = s("run.db"),
        arch = s("archive"),
        spool = spool.to_str().unwrap(),
        host = imap.host,
        port = imap.port,
        ca = imap.ca,
        user = imap.user,
    );
    std::fs::write(p("botwatch.toml"), &cfg).unwrap();
    let env = [("BOTWATCH_TEST_IMAP_PASSWORD", imap.password.as_str())];
    let (r, base) = start_run(&s("botwatch.toml"), &env, true);
    let base = base.unwrap();
    let run_db = p("run.db");

    // All three arrive, through the pipeline: one report each.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&run_db, "SELECT count(*) FROM intake_sources WHERE reports >= 1") < 3 {
        assert!(Instant::now() < deadline, "a report from each source within 60 s:\n{}", jobs_dump(&run_db));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count(&run_db, "SELECT count(*) FROM reports"), 3);
    // The mail was moved once processed; its raw bytes are in the archive.
    wait_for(20, "the mail moved out of the inbox", || (mailbox_count(&imap, &mailbox) == 0).then_some(()));
    assert_eq!(mailbox_count(&imap, &format!("{mailbox}-done")), 1);
    assert!(std::fs::read_dir(p("archive").join("mail")).unwrap().next().is_some(), "mail archived");
    assert!(spool.join(".done").exists() && !spool.join(&spool_name).exists(), "spool file moved to .done");
    // Cases opened and their notices delivered to the SMTP server.
    let sent = wait_for(60, "notices sent", || {
        let cases = count(&run_db, "SELECT count(*) FROM cases");
        let pending = count(&run_db, "SELECT count(*) FROM outbox WHERE status <> 'sent'");
        let sent = count(&run_db, "SELECT count(*) FROM outbox WHERE status = 'sent'");
        (cases > 0 && sent > 0 && pending == 0).then_some(sent)
    });
    let got = wait_for(20, "the notices in the SMTP sink", || {
        let m = sink_messages(&sink, &format!("{tag}.test"));
        (m.len() as i64 == sent).then_some(m)
    });
    assert!(got.values().all(|&n| n == 1), "each notice once: {got:?}");
    // Every job's success on /metrics (figures there are up to a second old).
    let jobs = [
        format!("fetch {feed_url}"),
        "mail cert-mailbox".to_string(),
        "spool".into(),
        "cases".into(),
        "notify".into(),
    ];
    wait_for(40, "each job's success on /metrics", || {
        let m = metrics(&base);
        let all = jobs.iter().all(|j| {
            metric_value(&m, &format!("botwatch_job_last_success_timestamp_seconds{{job=\"{j}\"}}")).is_some()
                && metric_value(&m, &format!("botwatch_job_consecutive_failures{{job=\"{j}\"}}")) == Some(0.0)
        });
        let delivered = metric_value(&m, "botwatch_notices{status=\"sent\"}").is_some_and(|v| v >= 1.0);
        (all && delivered).then_some(())
    });

    // A big report into the spool; SIGKILL while it is being ingested.
    let big = synth("150000", "500", "41");
    let big_name = format!("{day}-event4_sinkhole-big-geo.csv");
    drop_into(&spool, &big_name, &big);
    wait_for(30, "the spool job to take the big report", || {
        let running: Option<i64> = db(&run_db)
            .query_row("SELECT running_since FROM jobs WHERE name = 'spool'", [], |r| r.get(0))
            .unwrap();
        (running.is_some() && spool.join(&big_name).exists()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(700));
    let mut r = r;
    r.0.kill().unwrap();
    r.0.wait().unwrap();
    drop(r);
    assert_eq!(count(&run_db, "SELECT count(*) FROM reports"), 3, "killed before the big report's commit");
    assert!(spool.join(&big_name).exists(), "the file stays in the spool until its report is stored");

    // Started again: the report is taken again, once.
    let (r, _) = start_run(&s("botwatch.toml"), &env, true);
    wait_for(90, "the big report stored after the restart", || {
        (count(&run_db, "SELECT count(*) FROM reports") == 4 && !spool.join(&big_name).exists()).then_some(())
    });

    // The same four reports ingested by hand into a fresh store, cases updated: the figures
    // the service must match.
    std::fs::write(p("ref.toml"), format!("[store]\npath = {:?}\n\n{common_cfg}", s("ref.db"))).unwrap();
    for (name, body) in
        [(&mail_name, &mail_csv), (&http_name, &http_csv), (&spool_name, &spool_csv), (&big_name, &big)]
    {
        std::fs::write(p(name), body).unwrap();
    }
    ok(&[
        "--config",
        &s("ref.toml"),
        "ingest",
        "--quiet",
        &s(&mail_name),
        &s(&http_name),
        &s(&spool_name),
        &s(&big_name),
    ]);
    ok(&["--config", &s("ref.toml"), "cases", "update"]);
    let ref_db = p("ref.db");
    for sql in [
        "SELECT count(*) FROM reports",
        "SELECT COALESCE(SUM(count), 0) FROM event_blocks",
        "SELECT count(*) FROM observations",
        "SELECT count(*) FROM rejects",
    ] {
        assert_eq!(count(&run_db, sql), count(&ref_db, sql), "{sql}");
    }
    let want_cases = count(&ref_db, "SELECT count(*) FROM cases");
    let want_notices = count(&ref_db, "SELECT count(*) FROM outbox");
    wait_for(60, "cases and notices as many as by hand", || {
        (count(&run_db, "SELECT count(*) FROM cases") == want_cases
            && count(&run_db, "SELECT count(*) FROM outbox WHERE status = 'sent'") == want_notices)
            .then_some(())
    });
    // Nothing more arrives later, and every notice reached the SMTP server exactly once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&run_db, "SELECT count(*) FROM cases"), want_cases);
    assert_eq!(count(&run_db, "SELECT count(*) FROM outbox"), want_notices);
    let got = wait_for(30, "every notice in the SMTP sink", || {
        let m = sink_messages(&sink, &format!("{tag}.test"));
        (m.len() as i64 == want_notices).then_some(m)
    });
    assert!(got.values().all(|&n| n == 1), "no notice sent twice: {got:?}");

    let st = terminate(r);
    assert!(st.success(), "SIGTERM ends botwatch run with 0: {st:?}");
}

#[test]
fn run_shows_a_feed_that_stops_as_stale() {
    let dir = tempfile::tempdir().unwrap();
    let s = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let day = yesterday();
    // Delivers once, then answers 404.
    let (base_feed, hits) = http_feed(synth("200", "20", "21"), 1);
    let url = format!("{base_feed}/{day}-event4_sinkhole-stale-geo.csv");
    std::fs::write(
        s("botwatch.toml"),
        format!(
            "[store]\npath = {:?}\n\n[fetch]\narchive_dir = {:?}\nattempts = 1\n\n[[feeds]]\nurl = {url:?}\nevery = \"1s\"\nstale_after = \"3s\"\n\n[run]\ncases_every = \"1h\"\nnotify_every = \"1h\"\n\n[server]\nmetrics_access = \"public\"\n",
            s("stale.db"),
            s("archive")
        ),
    )
    .unwrap();
    let (r, base) = start_run(&s("botwatch.toml"), &[], true);
    let base = base.unwrap();
    let stale_series = format!("botwatch_intake_stale{{source=\"{url}\",kind=\"http\"}}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let m = metrics(&base);
        if metric_value(&m, &stale_series) == Some(1.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "the feed shown stale on /metrics within 60 s:\n{m}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 2, "it kept asking");
    // The job and source series parse in Prometheus's own client parser.
    if let Some(py) = common::validator_python() {
        let f = dir.path().join("metrics.txt");
        std::fs::write(&f, &m).unwrap();
        eprintln!("{}", common::validate(&py, "prometheus", &f).trim());
    }
    assert_eq!(
        metric_value(&m, &format!("botwatch_intake_reports_total{{source=\"{url}\",kind=\"http\"}}")),
        Some(1.0)
    );
    let failures = metric_value(&m, &format!("botwatch_job_consecutive_failures{{job=\"fetch {url}\"}}"));
    assert!(failures.is_some_and(|f| f >= 1.0), "the 404s are failures: {m}");
    let health: Value =
        serde_json::from_str(&client().get(format!("{base}/healthz")).send().unwrap().text().unwrap())
            .unwrap();
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["stale_sources"].as_array().unwrap().iter().any(|v| v == url.as_str()), "{health}");
    // The dashboard says so too.
    let token = analyst_token(&s("botwatch.toml"), "desk");
    let c = client();
    let session = common::login(&c, &base, &token);
    let page = c.get(format!("{base}/")).header("cookie", session).send().unwrap().text().unwrap();
    // (The page escapes the URL's slashes.)
    let file = url.rsplit('/').next().unwrap();
    let row = page
        .lines()
        .find(|l| l.contains(file) && l.contains("<tr class=\"stale\"><td>http"))
        .unwrap_or_else(|| panic!("no stale row for the feed: {page}"));
    assert!(row.contains("stale"), "{row}");
    let api: Value = serde_json::from_str(
        &client().get(format!("{base}/api/v1/jobs")).bearer_auth(&token).send().unwrap().text().unwrap(),
    )
    .unwrap();
    assert!(
        api["sources"].as_array().unwrap().iter().any(|s| s["name"] == url.as_str() && s["stale"] == true),
        "{api}"
    );
    assert!(terminate(r).success());
}

#[test]
fn run_tells_systemd_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let s = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let cfg = |every: &str| {
        format!(
            "[store]\npath = {:?}\n\n[intake]\nspool = {:?}\nspool_every = {every:?}\n\n[run]\nserve = false\n",
            s("n.db"),
            s("spool")
        )
    };
    std::fs::write(s("botwatch.toml"), cfg("5s")).unwrap();
    let (r, _) = start_run(&s("botwatch.toml"), &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())], false);
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a notification from botwatch run");
        String::from_utf8_lossy(&buf[..n]).to_string()
    };
    let first = next();
    assert!(first.lines().any(|l| l == "READY=1"), "{first}");
    // A reload with a changed schedule: the job is recorded under the new interval.
    std::fs::write(s("botwatch.toml"), cfg("7s")).unwrap();
    signal(&r.0, "HUP");
    let reloading = next();
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    let ready = next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    wait_for(20, "the spool job under its new interval", || {
        let every: Option<i64> = db(&dir.path().join("n.db"))
            .query_row("SELECT every_secs FROM jobs WHERE name = 'spool'", [], |r| r.get(0))
            .ok();
        (every == Some(7)).then_some(())
    });
    // A config that does not parse is refused; the old one keeps running.
    std::fs::write(s("botwatch.toml"), "[store\n").unwrap();
    signal(&r.0, "HUP");
    let _ = next();
    let still = next();
    assert!(still.lines().any(|l| l == "READY=1"), "{still}");
    signal(&r.0, "TERM");
    let stopping = next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let st = exited_within_10s(r);
    assert!(st.success(), "{st:?}");
}

#[test]
fn shadowserver_reports_api_with_signed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let day = yesterday();
    let reports = dir.path().join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    std::fs::write(reports.join(format!("{day}-event4_sinkhole-test-geo.csv")), synth("300", "40", "51"))
        .unwrap();
    std::fs::write(
        reports.join(format!("{day}-event4_sinkhole_http-test-geo.csv")),
        synth("200", "30", "61"),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/shadowserver-api.py");
    let log = dir.path().join("api.log");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(["--key", "k-123", "--secret", "s3cr3t", "--reports"])
        .arg(&reports)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().rsplit(' ').next().unwrap().to_string();
    let _api = Running(child);
    let cfg = |db: &str| {
        format!(
            "[store]\npath = {:?}\n\n[fetch]\narchive_dir = {:?}\n\n[[intake.shadowserver]]\nname = \"cert\"\nurl = \"http://127.0.0.1:{port}/api2/\"\napi_key = \"k-123\"\nsecret = \"env:TEST_SHADOWSERVER_SECRET\"\nreports = [\"test\"]\nevery = \"1s\"\n\n[run]\nserve = false\ncases_every = \"1h\"\nnotify_every = \"1h\"\n",
            s(db),
            s("archive")
        )
    };
    std::fs::write(s("ok.toml"), cfg("ss.db")).unwrap();
    let (r, _) = start_run(&s("ok.toml"), &[("TEST_SHADOWSERVER_SECRET", "s3cr3t")], false);
    let ss_db = dir.path().join("ss.db");
    wait_for(60, "both listed reports stored", || {
        (count(&ss_db, "SELECT count(*) FROM reports") == 2).then_some(())
    });
    // Listed again every second, downloaded once each.
    std::thread::sleep(Duration::from_secs(3));
    assert!(terminate(r).success());
    let requests: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let lists = requests.iter().filter(|v| v["path"] == "/api2/reports/list" && v["listed"] == 2).count();
    let downloads = requests.iter().filter(|v| v["method"] == "GET" && v["ok"] == true).count();
    assert!(lists >= 2, "listed on every run: {requests:?}");
    assert_eq!(downloads, 2, "each report downloaded once: {requests:?}");
    assert!(requests.iter().all(|v| v.get("error").is_none()), "every request signed right: {requests:?}");
    let feeds: Vec<String> = db(&ss_db)
        .prepare("SELECT feed FROM reports ORDER BY feed")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(feeds, ["shadowserver_event4_sinkhole", "shadowserver_event4_sinkhole_http"]);

    // The wrong secret: the server refuses the signature and the job records why.
    std::fs::write(s("bad.toml"), cfg("bad.db")).unwrap();
    let (r, _) = start_run(&s("bad.toml"), &[("TEST_SHADOWSERVER_SECRET", "wrong")], false);
    let err = wait_for(30, "the refusal recorded", || {
        db(&dir.path().join("bad.db"))
            .query_row("SELECT last_error FROM jobs WHERE name = 'shadowserver cert'", [], |r| {
                r.get::<_, Option<String>>(0)
            })
            .ok()
            .flatten()
    });
    assert!(err.contains("401") && err.contains("HMAC2"), "{err}");
    assert!(terminate(r).success());
}

#[test]
fn reports_pushed_over_http_go_through_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let s = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    std::fs::write(
        s("botwatch.toml"),
        format!("[store]\npath = {:?}\n\n[fetch]\narchive_dir = {:?}\n", s("push.db"), s("archive")),
    )
    .unwrap();
    // The store must exist before serve; a token makes it.
    let token = analyst_token(&s("botwatch.toml"), "feeder");
    let (_srv, base, _) = common::serve(None, &s("botwatch.toml"), "http");
    let c = client();
    let body = synth("250", "25", "41");
    let report_name = format!("{}-event4_sinkhole-push-geo.csv", yesterday());
    let push = |b: &str, token: Option<&str>, name: &str| {
        let mut r = c.post(format!("{base}/api/v1/reports?name={name}")).body(b.to_string());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        let code = resp.status().as_u16();
        (code, serde_json::from_str::<Value>(&resp.text().unwrap()).unwrap_or(Value::Null))
    };
    let (code, v) = push(&body, Some(&token), &report_name);
    assert_eq!(code, 201, "{v}");
    assert_eq!((v["new_reports"].as_u64(), v["events"].as_u64()), (Some(1), Some(250)), "{v}");
    assert_eq!(v["reports"][0]["feed"], "shadowserver_event4_sinkhole");
    // The same report again is recognised: stored once.
    let (code, v) = push(&body, Some(&token), &report_name);
    assert_eq!((code, v["new_reports"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(push(&body, None, &report_name).0, 401);
    // Not a format botwatch knows: refused with the reason, nothing stored.
    let (code, v) = push("\u{0}\u{1}garbage", Some(&token), "junk.bin");
    assert_eq!(code, 422, "{v}");
    assert_eq!(count(&dir.path().join("push.db"), "SELECT count(*) FROM reports"), 1);
    assert_eq!(count(&dir.path().join("push.db"), "SELECT COALESCE(SUM(count), 0) FROM event_blocks"), 250);
    assert!(std::fs::read_dir(dir.path().join("archive").join("push")).unwrap().next().is_some(), "raw kept");
}
