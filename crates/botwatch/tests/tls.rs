//! `botwatch serve` over HTTPS (`[server] tls_cert` and `tls_key`), as clients see it on
//! 127.0.0.1: a client trusting only the server's certificate is answered over HTTP/1.1 and
//! HTTP/2, with `Strict-Transport-Security` and `Secure` cookies; plain HTTP to the TLS port,
//! silent and garbage clients fail alone without holding up anyone else; SIGTERM finishes
//! promptly; a half or broken TLS setting is a start-up error naming what is wrong.
//!
//! The certificate is made at test time (rcgen, self-signed for 127.0.0.1 and localhost,
//! valid until 4096) rather than committed, so no private key sits in the repository for
//! secret scanners to flag.

mod common;

use common::bin;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Server {
    child: common::Running,
    /// `https://127.0.0.1:PORT`
    base: String,
    addr: SocketAddr,
}

/// A self-signed certificate and its key, written to `dir`; (cert path, key path, cert PEM).
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let pem = ck.cert.pem();
    let (cert, key) = (dir.join(format!("{name}-cert.pem")), dir.join(format!("{name}-key.pem")));
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key, pem)
}

/// A database holding one admin token, and a config with `server_toml` as its `[server]`
/// section; returns the config path.
fn setup(dir: &Path, server_toml: &str) -> String {
    let db = dir.join("botwatch.db");
    let cfg = dir.join("botwatch.toml");
    std::fs::write(
        &cfg,
        // The handshake counters are read from /metrics without a token here.
        format!(
            "[store]\npath = {:?}\n\n[server]\nmetrics_access = \"public\"\n{server_toml}",
            db.display().to_string()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let o =
        bin().args(["--config", &cfg, "token", "create", "--name", "a", "--role", "admin"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    cfg
}

fn tls_toml(cert: &Path, key: &Path, handshake_ms: u64) -> String {
    format!(
        "tls_cert = {:?}\ntls_key = {:?}\ntls_handshake_timeout_ms = {handshake_ms}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

fn serve(cfg: &str) -> Server {
    let (child, base, line) = common::serve(None, cfg, "https");
    assert!(!line.contains("http://"), "plain URL printed for a TLS server: {line:?}");
    let addr = base.trim_start_matches("https://").parse().unwrap();
    Server { child, base, addr }
}

/// A client that trusts only `cert_pem`.
fn client(cert_pem: &str) -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn metric(c: &reqwest::blocking::Client, base: &str, outcome: &str) -> u64 {
    let text = c.get(format!("{base}/metrics")).send().unwrap().text().unwrap();
    let key = format!("botwatch_tls_handshakes_total{{outcome=\"{outcome}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&key)).map_or(0, |n| n.parse().unwrap())
}

/// Waits (a little: the server may count just after closing) for a handshake count.
fn wait_metric(c: &reqwest::blocking::Client, base: &str, outcome: &str, at_least: u64) {
    let started = Instant::now();
    loop {
        let n = metric(c, base, outcome);
        if n >= at_least {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{n} TLS handshakes {outcome}, expected {at_least}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn https_answers_with_hsts_and_secure_cookies_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path(), "server");
    let cfg = setup(dir.path(), &tls_toml(&cert, &key, 10_000));
    let srv = serve(&cfg);
    let c = client(&pem);

    let r = c.get(format!("{}/healthz", srv.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(r.headers()["x-frame-options"], "DENY", "the usual security headers too");

    // The log-in form sets its nonce cookie: Secure, since TLS implies `secure_cookies`.
    let r = c.get(format!("{}/login", srv.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    assert!(!cookies.is_empty(), "no cookie set by /login");
    for ck in &cookies {
        assert!(ck.contains("; Secure"), "cookie without Secure over HTTPS: {ck}");
    }

    // The portal reads the peer address (ConnectInfo) over TLS as over plain HTTP.
    let r = c.get(format!("{}/check", srv.base)).send().unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());

    // The same certificate by name.
    let r = c.get(format!("https://localhost:{}/healthz", srv.addr.port())).send().unwrap();
    assert_eq!(r.status(), 200);

    // HTTP/2, chosen by ALPN.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (alpn, status, hsts) = rt.block_on(h2_get(srv.addr, &pem, "/healthz"));
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(status, 200);
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    // reqwest keeps one connection per host: 127.0.0.1, localhost, and the HTTP/2 one.
    assert!(metric(&c, &srv.base, "ok") >= 3);
}

/// GET `path` over HTTP/2 (ALPN h2); (negotiated protocol, status, HSTS header).
async fn h2_get(addr: SocketAddr, cert_pem: &str, path: &str) -> (Option<Vec<u8>>, u16, Option<String>) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(name, tcp).await.unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://{addr}{path}")).body(String::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let hsts = resp.headers().get("strict-transport-security").map(|v| v.to_str().unwrap().to_string());
    (alpn, resp.status().as_u16(), hsts)
}

#[test]
fn plain_http_to_the_tls_port_fails_cleanly_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path(), "server");
    let cfg = setup(dir.path(), &tls_toml(&cert, &key, 10_000));
    let srv = serve(&cfg);
    let c = client(&pem);

    // By hand: the server closes (perhaps after a TLS alert) and never answers in HTTP.
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got); // EOF or reset; a timeout would leave `got` short too
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP answered on the TLS port: {:?}",
        String::from_utf8_lossy(&got)
    );

    // By a client: an error, not a hang.
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let started = Instant::now();
    assert!(plain.get(format!("http://{}/healthz", srv.addr)).send().is_err());
    assert!(started.elapsed() < Duration::from_secs(9), "plain request hung until the timeout");

    // A client that does not trust the certificate is refused by its own side.
    let (_, _, other) = certificate(dir.path(), "other");
    assert!(client(&other).get(format!("{}/healthz", srv.base)).send().is_err());

    assert_eq!(c.get(format!("{}/healthz", srv.base)).send().unwrap().status(), 200);
    wait_metric(&c, &srv.base, "failed", 2);
}

#[test]
fn silent_and_garbage_clients_do_not_block_others() {
    const HANDSHAKE_MS: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path(), "server");
    let cfg = setup(dir.path(), &tls_toml(&cert, &key, HANDSHAKE_MS));
    let srv = serve(&cfg);
    let c = client(&pem);

    let opened = Instant::now();
    let mut stalled: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(srv.addr).unwrap()).collect();
    // The start of a TLS record that never comes, and bytes that are no TLS at all.
    stalled[1].write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    stalled[2].write_all(b"\x00\xff garbage \xfe\n").unwrap();

    // Answered while all of them still hold their connections open.
    let r = c.get(format!("{}/healthz", srv.base)).send().unwrap();
    assert_eq!(r.status(), 200);
    let took = opened.elapsed();
    assert!(took < Duration::from_millis(HANDSHAKE_MS), "a good client waited {took:?} behind stalled ones");

    // The silent ones are cut off at the handshake deadline, not kept for ever.
    for (i, s) in stalled.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut buf = [0u8; 256];
        let r = loop {
            match s.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(_) => continue, // an alert
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert!(r.is_ok(), "stalled client {i} not closed by the server: {r:?}");
    }
    wait_metric(&c, &srv.base, "timeout", 3);
    wait_metric(&c, &srv.base, "failed", 1);
    assert_eq!(c.get(format!("{}/healthz", srv.base)).send().unwrap().status(), 200);
}

#[test]
fn sigterm_stops_promptly_despite_idle_and_half_open_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(dir.path(), "server");
    // A long handshake deadline: shutdown must not wait for it.
    let cfg = setup(dir.path(), &tls_toml(&cert, &key, 60_000));
    let mut srv = serve(&cfg);
    let c = client(&pem);
    // An idle keep-alive connection (the client pools it) and one stuck before its handshake.
    assert_eq!(c.get(format!("{}/healthz", srv.base)).send().unwrap().status(), 200);
    let _silent = TcpStream::connect(srv.addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let started = Instant::now();
    let ok =
        std::process::Command::new("kill").args(["-TERM", &srv.child.0.id().to_string()]).status().unwrap();
    assert!(ok.success());
    let status = loop {
        if let Some(s) = srv.child.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "server still running 20 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
    assert!(TcpStream::connect(srv.addr).is_err(), "still accepting after shutdown");
}

/// `botwatch serve`'s exit and stderr for a config with `server_toml`.
fn serve_fails(dir: &Path, server_toml: &str) -> String {
    let cfg = setup(dir, server_toml);
    let o = bin().args(["--config", &cfg, "serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!o.status.success(), "served despite a bad TLS setting: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("serving on"));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tls_config_errors_name_the_setting_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, _) = certificate(dir.path(), "server");
    let (_, other_key, _) = certificate(dir.path(), "other");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "this is no PEM\n").unwrap();

    let e = serve_fails(dir.path(), &format!("tls_cert = {:?}\n", cert.display().to_string()));
    assert!(e.contains("tls_key"), "{e}");
    let e = serve_fails(dir.path(), &format!("tls_key = {:?}\n", key.display().to_string()));
    assert!(e.contains("tls_cert"), "{e}");

    let e = serve_fails(dir.path(), &tls_toml(&junk, &key, 10_000));
    assert!(e.contains("junk.pem") && e.contains("CERTIFICATE"), "{e}");
    let e = serve_fails(dir.path(), &tls_toml(&cert, &junk, 10_000));
    assert!(e.contains("junk.pem") && e.contains("private key"), "{e}");
    let e = serve_fails(dir.path(), &tls_toml(&cert, &dir.path().join("absent.pem"), 10_000));
    assert!(e.contains("absent.pem"), "{e}");
    // A key that is not the certificate's.
    let e = serve_fails(dir.path(), &tls_toml(&cert, &other_key, 10_000));
    assert!(e.contains("server-cert.pem") && e.contains("other-key.pem"), "{e}");
}
