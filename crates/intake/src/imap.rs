//! Reports mailed to an IMAP mailbox (`[[intake.imap]]`). The `imap` crate speaks the
//! protocol over a stream we give it: rustls with the ring provider (no OpenSSL), implicit
//! TLS or STARTTLS, plain only to a loopback address.
//!
//! Each message is fetched with `BODY.PEEK[]` (reading does not mark it), archived raw,
//! ingested, and only then marked processed: moved to `move_to`, else flagged `\Seen`. A
//! crash before the mark fetches it again next time; its reports are recognised by content
//! hash, so nothing is counted twice. A message over `max_message_mib` is left unread with
//! a warning; one with nothing readable is marked processed (it stays in the archive).

use crate::config::{FetchSection, ImapSource, ImapTls};
use crate::pipeline::Ingestor;
use crate::{Delivered, Origin};
use anyhow::{Context, Result, bail};
use botwatch_model::Timestamp;
use botwatch_store::Store;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The connection under the IMAP session.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub type Session = imap::Session<Stream>;

fn tls_config(src: &ImapSource) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match &src.ca_file {
        Some(p) => {
            use rustls_pki_types::pem::PemObject;
            for c in rustls_pki_types::CertificateDer::pem_file_iter(p)
                .with_context(|| format!("reading ca_file {}", p.display()))?
            {
                roots.add(c.with_context(|| format!("ca_file {}", p.display()))?)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
    }
    if roots.is_empty() {
        bail!("no certificate authority to check the IMAP server against (set ca_file)");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

fn handshake(src: &ImapSource, tcp: TcpStream) -> Result<Stream> {
    let name = rustls_pki_types::ServerName::try_from(src.host.clone())
        .with_context(|| format!("{:?} is not a host name", src.host))?;
    let conn = rustls::ClientConnection::new(tls_config(src)?, name)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Handshake now, so a certificate problem is reported as such.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).context("TLS handshake with the IMAP server")?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

/// The plain-text prelude of STARTTLS (RFC 3501 6.2.1), read a byte at a time so that
/// nothing of the TLS handshake that follows is consumed here.
fn starttls(mut tcp: TcpStream) -> Result<TcpStream> {
    fn line(tcp: &mut TcpStream) -> Result<String> {
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n") {
            if tcp.read(&mut b)? == 0 {
                bail!("the server closed the connection");
            }
            buf.push(b[0]);
            if buf.len() > 64 * 1024 {
                bail!("an over-long line from the server");
            }
        }
        Ok(String::from_utf8_lossy(&buf).trim_end().to_string())
    }
    let greeting = line(&mut tcp)?;
    if !greeting.starts_with("* OK") {
        bail!("unexpected greeting {greeting:?}");
    }
    tcp.write_all(b"s1 CAPABILITY\r\n")?;
    let mut offered = false;
    loop {
        let l = line(&mut tcp)?;
        if l.starts_with("* CAPABILITY") {
            offered = l.split_ascii_whitespace().any(|c| c.eq_ignore_ascii_case("STARTTLS"));
        } else if let Some(r) = l.strip_prefix("s1 ") {
            if !r.starts_with("OK") {
                bail!("CAPABILITY refused: {r}");
            }
            break;
        }
    }
    if !offered {
        bail!("the server does not offer STARTTLS");
    }
    tcp.write_all(b"s2 STARTTLS\r\n")?;
    loop {
        let l = line(&mut tcp)?;
        if let Some(r) = l.strip_prefix("s2 ") {
            if !r.starts_with("OK") {
                bail!("STARTTLS refused: {r}");
            }
            return Ok(tcp);
        }
    }
}

/// Connects and logs in.
pub fn connect(src: &ImapSource, timeout: Duration) -> Result<Session> {
    let addr = (src.host.as_str(), src.port());
    let tcp =
        TcpStream::connect(addr).with_context(|| format!("connecting to {}:{}", src.host, src.port()))?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let client = match src.tls {
        ImapTls::Implicit => {
            let mut c = imap::Client::new(handshake(src, tcp)?);
            c.read_greeting()?;
            c
        }
        ImapTls::Starttls => {
            let tcp = starttls(tcp).with_context(|| format!("STARTTLS with {}", src.host))?;
            let mut c = imap::Client::new(handshake(src, tcp)?);
            // The greeting came before the upgrade.
            c.greeting_read = true;
            c
        }
        ImapTls::None => {
            let loopback = tcp.peer_addr().map(|a| a.ip().is_loopback()).unwrap_or(false);
            if !loopback {
                bail!("tls = \"none\" is allowed only to a loopback address, not {}", src.host);
            }
            let mut c = imap::Client::new(Stream::Plain(tcp));
            c.read_greeting()?;
            c
        }
    };
    let password = botwatch_model::secret(&src.password).map_err(anyhow::Error::msg).context("password")?;
    client
        .login(&src.user, &password)
        .map_err(|(e, _)| e)
        .with_context(|| format!("logging in to {} as {}", src.host, src.user))
}

/// Reads the mailbox's unprocessed messages into the store.
pub fn collect(
    src: &ImapSource,
    fetch: &FetchSection,
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    archive_dir: &Path,
    now: &dyn Fn() -> Timestamp,
) -> Result<Delivered> {
    let mut s = connect(src, Duration::from_secs(fetch.timeout_secs))?;
    let r = collect_in(&mut s, src, ing, store, archive_dir, now);
    let _ = s.logout();
    r
}

fn collect_in(
    s: &mut Session,
    src: &ImapSource,
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    archive_dir: &Path,
    now: &dyn Fn() -> Timestamp,
) -> Result<Delivered> {
    if let Some(dest) = &src.move_to {
        // Made on first use; "already exists" is the usual answer.
        let _ = s.create(dest);
    }
    s.select(&src.mailbox).with_context(|| format!("selecting {}", src.mailbox))?;
    let query = if src.move_to.is_some() { "NOT DELETED" } else { "UNSEEN NOT DELETED" };
    let mut uids: Vec<u32> = s.uid_search(query)?.into_iter().collect();
    uids.sort_unstable();
    let max = src.max_message_mib.saturating_mul(1 << 20);
    let name = src.name();
    let mut out = Delivered::default();
    for uid in uids {
        let sizes = s.uid_fetch(uid.to_string(), "RFC822.SIZE")?;
        let size = sizes.iter().next().and_then(|f| f.size).unwrap_or(0);
        if u64::from(size) > max {
            let msg = format!("message UID {uid} of {size} bytes exceeds max_message_mib; left unread");
            tracing::warn!(source = %name, "{msg}");
            out.skipped.push(msg);
            continue;
        }
        let fetched = s.uid_fetch(uid.to_string(), "BODY.PEEK[]")?;
        let Some(raw) = fetched.iter().next().and_then(|f| f.body()) else {
            bail!("the server sent no body for message UID {uid}");
        };
        let at = now();
        let archived =
            crate::archive(archive_dir, "mail", &format!("{}-uid{uid}.eml", src.mailbox), raw, at)?;
        let origin = Origin {
            feed: src.feed.as_deref(),
            source: format!("{name} UID {uid}"),
            observed: at,
            archive: Some(archived.path.display().to_string()),
        };
        let d = crate::ingest_mail(ing, store, raw, &origin)?;
        if !d.unreadable.is_empty() {
            tracing::warn!(source = %name, uid, problems = %d.unreadable.join("; "), "Mail partly unreadable; kept in the archive");
        }
        out.absorb(d);
        mark_processed(s, src, uid)?;
    }
    Ok(out)
}

fn mark_processed(s: &mut Session, src: &ImapSource, uid: u32) -> Result<()> {
    let set = uid.to_string();
    match &src.move_to {
        Some(dest) => {
            if s.capabilities()?.has_str("MOVE") {
                s.uid_mv(&set, dest)?;
            } else {
                s.uid_copy(&set, dest)?;
                s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)")?;
                s.expunge()?;
            }
        }
        None => {
            s.uid_store(&set, "+FLAGS.SILENT (\\Seen)")?;
        }
    }
    Ok(())
}
