//! Getting reports in. The ingest pipeline ([`pipeline`]) and every way a report reaches
//! it: files and standard input on the command line (plain, compressed, mail, mbox),
//! configured HTTP(S) feeds ([`fetch`]), IMAP mailboxes ([`imap`]), the Shadowserver
//! Reports API ([`shadowserver`]), a watched spool directory ([`spool`]) and HTTP push (the
//! server's `POST /api/v1/reports`). The CLI, `botwatch run` and `serve` all come through
//! here, so a report is treated the same whichever way it came: rejects kept, duplicates
//! merged, the raw bytes archived or kept where they lie.

pub mod config;
pub mod fetch;
pub mod imap;
pub mod mail;
pub mod pipeline;
pub mod shadowserver;
pub mod spool;
pub mod stream;

use anyhow::{Context, Result};
use botwatch_model::Timestamp;
use botwatch_store::Store;
use bytes::Bytes;
use pipeline::{Ingestor, Input, ReportSummary};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The fuzz entry point (`fuzz/fuzz_targets/intake_mail.rs`, replayed on stable by
/// `tests/fuzz_corpus.rs`): whatever a mailbox, a spool or a Shadowserver listing holds, the
/// readers never panic and what they hand on is bounded by the input.
pub fn fuzz(data: &[u8]) {
    let _ = mail::looks_like_mail(data);
    let _ = mail::looks_like_mbox(data);
    if let Some(m) = mail::parse(data) {
        let total: usize = m.parts.iter().map(|p| p.data.len()).sum();
        // Decoding (base64, quoted-printable) shrinks; text parts are made UTF-8, where an
        // undecodable byte becomes U+FFFD (3 bytes): at most three times the input.
        assert!(total <= data.len() * 3 + 64, "{total} bytes of parts from {} bytes", data.len());
        for p in &m.parts {
            assert!(!p.name.contains('/') && !p.name.contains('\\'), "a part name with a path: {:?}", p.name);
        }
    }
    let msgs = mail::mbox_messages(data);
    assert!(msgs.iter().map(|m| m.len()).sum::<usize>() <= data.len());
    let _ = serde_json::from_slice::<Vec<shadowserver::Listed>>(data);
}

/// What one delivery (a file, a mail, a download, a push) came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivered {
    pub reports: Vec<ReportSummary>,
    /// Parts that could not be ingested (not a known format, unreadable), with why. The raw
    /// delivery is kept (archived, or in the spool's `.done`) and can be replayed.
    pub unreadable: Vec<String>,
    /// Parts passed over as not reports (a mail's signature, images), with why.
    pub skipped: Vec<String>,
}

impl Delivered {
    /// Reports not seen before (a report already stored, same content, counts once).
    pub fn new_reports(&self) -> usize {
        self.reports.iter().filter(|r| r.new).count()
    }

    pub fn events(&self) -> u64 {
        self.reports.iter().filter(|r| r.new).map(|r| r.events).sum()
    }

    pub fn absorb(&mut self, other: Delivered) {
        self.reports.extend(other.reports);
        self.unreadable.extend(other.unreadable);
        self.skipped.extend(other.skipped);
    }

    /// A line for logs and the job's record: "2 reports (1 new, 1,204 events), 1 unreadable".
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} report(s) ({} new, {} events)",
            self.reports.len(),
            self.new_reports(),
            self.events()
        );
        if !self.unreadable.is_empty() {
            s.push_str(&format!(", {} unreadable: {}", self.unreadable.len(), self.unreadable.join("; ")));
        }
        s
    }
}

/// Where one delivery came from and when.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    /// Feed id for every report in it; detected per report when `None`.
    pub feed: Option<&'a str>,
    /// Recorded with each report (a URL, a mailbox and UID, a path).
    pub source: String,
    pub observed: Timestamp,
    /// Where the raw delivery is archived, recorded with each report.
    pub archive: Option<String>,
}

/// How a delivery's bytes are read.
enum Kind {
    Mail,
    Mbox,
    Report,
}

fn kind_of(name: &str, head: &[u8]) -> Kind {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".mbox") || mail::looks_like_mbox(head) {
        Kind::Mbox
    } else if lower.ends_with(".eml") || mail::looks_like_mail(head) {
        Kind::Mail
    } else {
        Kind::Report
    }
}

/// Ingests a file: a report (plain, gzip, zip), a mail (`.eml`) or an mbox. A mail's size
/// is bounded by `[ingest] max_document_mib` (it is parsed whole); reports stream.
pub fn ingest_file(
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    path: &Path,
    display_name: &str,
    origin: &Origin<'_>,
    progress: &dyn Fn(u64),
) -> Result<Delivered> {
    let mut head = vec![0u8; 8192];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    head.truncate(n);
    match kind_of(display_name, &head) {
        Kind::Report => {
            let reports = ing.ingest(
                store,
                Input {
                    name: display_name,
                    data: botwatch_feeds::input::Source::File(path.to_path_buf()),
                    feed: origin.feed,
                    source: Some(origin.source.clone()),
                    observed: origin.observed,
                    archive: origin.archive.clone(),
                },
                progress,
            )?;
            Ok(Delivered { reports, ..Delivered::default() })
        }
        k => {
            let len = std::fs::metadata(path)?.len();
            if len > ing.limits.max_document {
                anyhow::bail!(
                    "{display_name}: a mail of {len} bytes is larger than [ingest] max_document_mib allows"
                );
            }
            let data =
                Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
            progress(len);
            match k {
                Kind::Mbox => ingest_mbox(ing, store, &data, origin),
                _ => ingest_mail(ing, store, &data, origin),
            }
        }
    }
}

/// Ingests a delivery held in memory (a download, a pushed body, a mail).
pub fn ingest_bytes(
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    name: &str,
    data: Bytes,
    origin: &Origin<'_>,
) -> Result<Delivered> {
    let head = &data[..data.len().min(8192)];
    match kind_of(name, head) {
        Kind::Mail => ingest_mail(ing, store, &data, origin),
        Kind::Mbox => ingest_mbox(ing, store, &data, origin),
        Kind::Report => {
            let reports = ing.ingest(
                store,
                Input {
                    name,
                    data: botwatch_feeds::input::Source::Bytes(data),
                    feed: origin.feed,
                    source: Some(origin.source.clone()),
                    observed: origin.observed,
                    archive: origin.archive.clone(),
                },
                &|_| {},
            )?;
            Ok(Delivered { reports, ..Delivered::default() })
        }
    }
}

/// Whether an ingest failed in the store (worth retrying) rather than on the input.
pub fn is_store_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<botwatch_store::StoreError>().is_some())
}

/// A mail's reports. A part that cannot be read is noted, not fatal: the others go in, and
/// the mail stays archived for a replay. A store error is returned (the mail is then left
/// unprocessed, for the next attempt).
pub fn ingest_mail(
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    raw: &[u8],
    origin: &Origin<'_>,
) -> Result<Delivered> {
    let Some(m) = mail::parse(raw) else {
        return Ok(Delivered { unreadable: vec!["not a mail message".into()], ..Delivered::default() });
    };
    let mut out = Delivered { skipped: m.skipped, ..Delivered::default() };
    if m.parts.is_empty() {
        out.unreadable.push(format!(
            "mail {} has no attachment or text that could be a report",
            m.message_id.as_deref().unwrap_or("(no Message-ID)")
        ));
    }
    for p in m.parts {
        let source = match &m.message_id {
            Some(id) => format!("{} <{id}>", origin.source),
            None => origin.source.clone(),
        };
        let r = ing.ingest(
            store,
            Input {
                name: &p.name,
                data: botwatch_feeds::input::Source::Bytes(p.data),
                feed: origin.feed,
                source: Some(source),
                observed: origin.observed,
                archive: origin.archive.clone(),
            },
            &|_| {},
        );
        match r {
            Ok(r) => out.reports.extend(r),
            Err(e) if is_store_error(&e) => return Err(e),
            Err(e) => out.unreadable.push(format!("{}: {e:#}", p.name)),
        }
    }
    Ok(out)
}

fn ingest_mbox(
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    data: &[u8],
    origin: &Origin<'_>,
) -> Result<Delivered> {
    let mut out = Delivered::default();
    for (i, m) in mail::mbox_messages(data).into_iter().enumerate() {
        let o = Origin { source: format!("{} message {}", origin.source, i + 1), ..origin.clone() };
        out.absorb(ingest_mail(ing, store, &m, &o)?);
    }
    Ok(out)
}

/// A delivery kept by [`archive`].
pub struct Archived {
    pub path: PathBuf,
    /// The delivery's SHA-256, hex: callers that record it need not hash it again.
    pub sha256: String,
}

/// Keeps a delivery's raw bytes under `dir/<kind>/<day>/` (named by content hash, so the same
/// delivery is kept once) before it is parsed, so it can be replayed with `botwatch ingest`.
pub fn archive(dir: &Path, kind: &str, name: &str, data: &[u8], now: Timestamp) -> Result<Archived> {
    let sha = pipeline::sha256_hex(data);
    let day_dir = dir.join(kind).join(now.day());
    std::fs::create_dir_all(&day_dir).with_context(|| format!("creating {}", day_dir.display()))?;
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(120)
        .collect();
    let path = day_dir.join(format!("{}-{safe}", &sha[..16]));
    if !path.exists() {
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(Archived { path, sha256: sha })
}

/// The file name a `Content-Disposition` header gives (`attachment; filename="x.csv"`),
/// without directories.
pub fn disposition_file_name(header: &str) -> Option<String> {
    let f = header.split("filename=").nth(1)?.trim_matches(['"', ';', ' ']);
    let base = f.rsplit(['/', '\\']).next().unwrap_or("");
    (!base.trim().is_empty()).then(|| base.to_string())
}
