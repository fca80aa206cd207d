//! `botwatch fetch`: pull configured feeds over HTTP(S), politely.
//!
//! - Conditional GET: the ETag and Last-Modified of the last fetch are sent back, and a
//!   `304 Not Modified` costs nothing.
//! - Retries with exponential back-off on connection errors, timeouts, 429 and 5xx
//!   (honouring `Retry-After`), never on other 4xx.
//! - The raw body is archived under `archive_dir/<feed>/<day>/` before it is parsed, so any
//!   report can be replayed with `botwatch ingest`.
//! - Header values may name secrets (`env:NAME`, `file:PATH`), read at each fetch.
//! - TLS is rustls with the ring provider: no OpenSSL, no C toolchain beyond ring's.

use crate::config::{FeedSource, FetchSection};
use crate::pipeline::{Ingestor, Input, ReportSummary};
use anyhow::{Context, Result, bail};
use botwatch_model::{Clock, Timestamp};
use botwatch_store::{FetchState, Store};
use bytes::Bytes;
use serde::Serialize;
use std::time::Duration;

/// Installs rustls' ring provider once; reqwest panics without a provider.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchOutcome {
    pub url: String,
    pub status: String,
    pub attempts: u32,
    pub archived: Option<String>,
    pub reports: Vec<ReportSummary>,
    pub error: Option<String>,
}

pub struct Fetcher<'a> {
    pub cfg: &'a FetchSection,
    pub clock: &'a dyn Clock,
    client: reqwest::blocking::Client,
}

enum Got {
    NotModified,
    Body { data: Bytes, etag: Option<String>, last_modified: Option<String>, file_name: String },
}

impl<'a> Fetcher<'a> {
    pub fn new(cfg: &'a FetchSection, clock: &'a dyn Clock) -> Result<Self> {
        install_tls_provider();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .user_agent(cfg.user_agent.clone())
            .build()
            .context("building the HTTP client")?;
        Ok(Fetcher { cfg, clock, client })
    }

    /// Fetches one feed and ingests what it got.
    pub fn fetch(&self, src: &FeedSource, store: &mut dyn Store, ing: &Ingestor<'_>) -> FetchOutcome {
        let mut out = FetchOutcome {
            url: src.url.clone(),
            status: String::new(),
            attempts: 0,
            archived: None,
            reports: vec![],
            error: None,
        };
        let prev = store.fetch_state(&src.url).ok().flatten();
        let got = self.get_with_retries(src, prev.as_ref(), &mut out.attempts);
        let now = self.clock.now();
        match got {
            Err(e) => {
                out.status = "error".into();
                out.error = Some(format!("{e:#}"));
                let mut st = prev.unwrap_or_default();
                st.url = src.url.clone();
                st.feed = src.feed.clone().unwrap_or_default();
                st.last_fetch = Some(now);
                st.last_status = Some(format!("error: {e:#}"));
                let _ = store.save_fetch_state(&st);
            }
            Ok(Got::NotModified) => {
                out.status = "not modified".into();
                let mut st = prev.unwrap_or_default();
                st.last_fetch = Some(now);
                st.last_status = Some("304 not modified".into());
                let _ = store.save_fetch_state(&st);
            }
            Ok(Got::Body { data, etag, last_modified, file_name }) => {
                let kind = src.feed.as_deref().unwrap_or("detected");
                let (archived, sha) =
                    match crate::archive(&self.cfg.archive_dir, kind, &file_name, &data, now) {
                        Ok(a) => (a.path.display().to_string(), a.sha256),
                        Err(e) => {
                            out.status = "error".into();
                            out.error = Some(format!("archiving: {e:#}"));
                            return out;
                        }
                    };
                out.archived = Some(archived.clone());
                let res = ing.ingest(
                    store,
                    Input {
                        name: &file_name,
                        data: botwatch_feeds::input::Source::Bytes(data),
                        feed: src.feed.as_deref(),
                        source: Some(src.url.clone()),
                        observed: now,
                        archive: Some(archived),
                    },
                    &|_| {},
                );
                match res {
                    Ok(r) => {
                        out.status =
                            if r.iter().any(|s| s.new) { "ingested".into() } else { "unchanged".into() };
                        out.reports = r;
                        let st = FetchState {
                            url: src.url.clone(),
                            feed: out.reports.first().map(|r| r.feed.clone()).unwrap_or_default(),
                            etag,
                            last_modified,
                            last_fetch: Some(now),
                            last_status: Some("200 ok".into()),
                            last_sha256: Some(sha),
                        };
                        let _ = store.save_fetch_state(&st);
                    }
                    Err(e) => {
                        out.status = "error".into();
                        out.error = Some(format!("{e:#}"));
                    }
                }
            }
        }
        out
    }

    fn get_with_retries(
        &self,
        src: &FeedSource,
        prev: Option<&FetchState>,
        attempts: &mut u32,
    ) -> Result<Got> {
        let mut delay = Duration::from_millis(self.cfg.backoff_ms);
        loop {
            *attempts += 1;
            match self.get_once(src, prev) {
                Ok(g) => return Ok(g),
                Err(Retry::Fatal(e)) => return Err(e),
                Err(Retry::Again(e, after)) => {
                    if *attempts >= self.cfg.attempts.max(1) {
                        return Err(e.context(format!("giving up after {attempts} attempts")));
                    }
                    let wait = after.unwrap_or(delay).min(Duration::from_secs(300));
                    tracing::warn!(url = %src.url, attempt = *attempts, wait_ms = wait.as_millis() as u64, error = %format!("{e:#}"), "Fetch failed; retrying");
                    std::thread::sleep(wait);
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }

    fn get_once(&self, src: &FeedSource, prev: Option<&FetchState>) -> Result<Got, Retry> {
        let mut req = self.client.get(&src.url);
        for (k, v) in &src.headers {
            let v =
                botwatch_model::secret(v).map_err(|e| Retry::Fatal(anyhow::anyhow!("header {k}: {e}")))?;
            req = req.header(k, v);
        }
        if let Some(p) = prev {
            if let Some(e) = &p.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(m) = &p.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
            }
        }
        let resp =
            req.send().map_err(|e| Retry::Again(anyhow::Error::new(e).context("request failed"), None))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Got::NotModified);
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(Retry::Again(anyhow::anyhow!("server answered {status}"), after));
        }
        if !status.is_success() {
            return Err(Retry::Fatal(anyhow::anyhow!("server answered {status}")));
        }
        let header = |h| {
            resp.headers()
                .get(h)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header(reqwest::header::ETAG);
        let last_modified = header(reqwest::header::LAST_MODIFIED);
        let file_name = header(reqwest::header::CONTENT_DISPOSITION)
            .and_then(|d| crate::disposition_file_name(&d))
            .unwrap_or_else(|| file_name_of(&src.url));
        if let Some(len) = resp.content_length()
            && len > self.cfg.max_bytes
        {
            return Err(Retry::Fatal(anyhow::anyhow!("report of {len} bytes exceeds fetch.max_bytes")));
        }
        let mut data = Vec::new();
        use std::io::Read;
        resp.take(self.cfg.max_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|e| Retry::Again(anyhow::Error::new(e).context("reading body"), None))?;
        if data.len() as u64 > self.cfg.max_bytes {
            return Err(Retry::Fatal(anyhow::anyhow!("report exceeds fetch.max_bytes")));
        }
        Ok(Got::Body { data: Bytes::from(data), etag, last_modified, file_name })
    }
}

enum Retry {
    Again(anyhow::Error, Option<Duration>),
    Fatal(anyhow::Error),
}

/// The last path segment of a URL, without query.
pub fn file_name_of(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    let path = no_query.split_once("://").map(|(_, r)| r).unwrap_or(no_query);
    let seg = path.split('/').skip(1).filter(|s| !s.is_empty()).last().unwrap_or("report");
    seg.to_string()
}

/// Fails unless the URL is http(s).
pub fn check_url(url: &str) -> Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("feed URL {url:?} is not http(s)");
    }
    Ok(())
}

/// Deletes archived reports of days before `before` (`archive_dir/<feed>/<YYYY-MM-DD>/`);
/// returns how many files went. A missing archive is nothing to do.
pub fn prune_archive(cfg: &crate::config::FetchSection, before: Timestamp) -> Result<u64> {
    let cut = before.to_rfc3339()[..10].to_string();
    let mut removed = 0;
    let Ok(feeds) = std::fs::read_dir(&cfg.archive_dir) else { return Ok(0) };
    for feed in feeds.flatten().filter(|e| e.path().is_dir()) {
        for day in std::fs::read_dir(feed.path())?.flatten() {
            let name = day.file_name().to_string_lossy().to_string();
            // Only day folders botwatch made: `YYYY-MM-DD`, compared as text.
            let is_day = name.len() == 10 && name.as_bytes()[4] == b'-' && name.as_bytes()[7] == b'-';
            if is_day && name < cut && day.path().is_dir() {
                removed += std::fs::read_dir(day.path())?.count() as u64;
                std::fs::remove_dir_all(day.path())
                    .with_context(|| format!("removing {}", day.path().display()))?;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            file_name_of("https://feodotracker.abuse.ch/downloads/ipblocklist.csv"),
            "ipblocklist.csv"
        );
        assert_eq!(file_name_of("https://www.spamhaus.org/drop/drop.txt?x=1"), "drop.txt");
        assert_eq!(file_name_of("http://127.0.0.1:8080/"), "report");
    }
}
