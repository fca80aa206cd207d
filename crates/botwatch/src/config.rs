//! `botwatch.toml`: one file for everything. Every key has a default, so a missing file
//! means "embedded store in the current directory, shipped enrichment data".

use anyhow::{Context, Result};
use botwatch_feeds::generic::GenericConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use botwatch_intake::config::{Every, FeedSource, FetchSection, IntakeSection};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub store: StoreSection,
    /// Limits on what one input may expand to.
    pub ingest: IngestSection,
    pub enrich: EnrichSection,
    pub fetch: FetchSection,
    /// Feeds `botwatch fetch` pulls (and `botwatch run`, each on its `every`).
    pub feeds: Vec<FeedSource>,
    /// Reports delivered rather than fetched: a spool directory, IMAP mailboxes, the
    /// Shadowserver Reports API.
    pub intake: IntakeSection,
    /// `botwatch run`: the schedules of the jobs that are not intake.
    pub run: RunSection,
    /// NATS JetStream between intake and the store (`botwatch worker`); unset: intake
    /// stores directly.
    pub nats: botwatch_intake::stream::NatsSection,
    /// Generic CSV / list feeds defined by a column mapping.
    pub generic: Vec<GenericFeed>,
    /// Extra malware family aliases: alias → canonical name.
    pub families: std::collections::BTreeMap<String, String>,
    /// Organisations responsible for addresses (ISPs, hosters, CERTs).
    pub constituency: crate::isp::ConstituencySection,
    /// Subscriber attribution from lease/accounting logs.
    pub leases: crate::isp::LeasesSection,
    /// What opens a case, notice delays, escalation, walled garden, auto-close.
    pub cases: botwatch_cases::Policy,
    /// The "minimum security bar" per organisation and subscriber.
    pub bar: botwatch_cases::Bar,
    /// E-mail/webhook delivery, templates, verification links, rate limits, quiet hours.
    pub notify: botwatch_notify::NotifyConfig,
    /// Walled-garden exports: allow-list and RPZ zone names.
    pub walled_garden: crate::isp::WalledGardenSection,
    /// Own sensors: indicator lifetime, sighting window, internal networks, detectors.
    pub sensor: crate::sensor::SensorSection,
    /// `botwatch serve`: address, trusted proxies, portal rate limit, sessions.
    pub server: botwatch_server::ServerConfig,
    /// Sharing: this node's name, default TLP, indicator types, federation privacy. The
    /// TAXII server at `/taxii2/` answers only when this section is present.
    pub share: Option<botwatch_share::partners::ShareConfig>,
    /// Partner nodes and centres: credentials, collections, TLP entitlement.
    pub partners: Vec<botwatch_share::partners::Partner>,
    /// The version of the signed bar document `[bar]` came from (`[share] bar_document`);
    /// `None`: the local, unversioned `[bar]`.
    #[serde(skip)]
    pub bar_version: Option<String>,
}

/// `[run]`: what `botwatch run` does besides intake, and how often.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunSection {
    /// Serve the web side (API, dashboard, portal, `/metrics`) from the same process.
    pub serve: bool,
    /// `cases update`: new events into cases, due re-notices and escalations.
    pub cases_every: Every,
    /// `notify run`: deliver queued notices.
    pub notify_every: Every,
    /// The daily per-owner reports (`reports daily`) are written here for each finished
    /// day, once; needs `[constituency]`. Unset: none.
    pub daily_reports_dir: Option<PathBuf>,
    /// How often to look whether a day's reports are due.
    pub daily_reports_every: Every,
    /// Retention (`prune`, with `[store] retain_days`).
    pub retention_every: Every,
    /// A failing job waits its interval doubled per failure in a row, up to this.
    pub max_backoff: Every,
}

impl Default for RunSection {
    fn default() -> Self {
        RunSection {
            serve: true,
            cases_every: Every::secs(60),
            notify_every: Every::secs(60),
            daily_reports_dir: None,
            daily_reports_every: Every::secs(3600),
            retention_every: Every::secs(86_400),
            max_backoff: Every::secs(3600),
        }
    }
}

/// Where the config is looked for when `--config`/`BOTWATCH_CONFIG` is not given, in order.
pub const CONFIG_SEARCH: &[&str] = &["botwatch.toml", "/etc/botwatch/botwatch.toml"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite database file (the embedded default).
    pub path: PathBuf,
    /// PostgreSQL instead of the SQLite file: `postgres://user:password@host:port/db` (or
    /// `env:NAME` / `file:PATH` holding it, so the password stays out of the file). Every
    /// process of a deployment (`ingest`, `worker`, `serve`, …) points at the same one.
    pub url: Option<String>,
    /// Sightings of the same (IP, classification, family) closer than this are one
    /// observation.
    pub dedup_window_hours: u32,
    /// Personal data (events and their raw lines, observations, rejected lines, lease
    /// records, exposures, closed cases' evidence, sent notices' payloads, archived reports)
    /// older than this many days is deleted by `botwatch prune` and daily by `serve`. Unset:
    /// kept until deleted by hand.
    pub retain_days: Option<u32>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from("botwatch.db"),
            url: None,
            dedup_window_hours: 24,
            retain_days: None,
        }
    }
}

/// `[ingest]`: what one input may expand to. Inputs are read as streams, so these bound
/// work and disk, not memory (except `max_document_mib`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Decompressed size of one input, all its members together.
    pub max_gib: u64,
    /// Decompressed over compressed size (checked past the first 16 MiB): a gzip or zip
    /// member expanding more is refused as a compression bomb.
    pub max_ratio: u64,
    /// A report of a format that cannot be read in chunks (a JSON bundle, a MISP event) is
    /// held in memory up to this size, and so is a gzipped or zipped capture or dnstap file
    /// in `scan` and `eval flows`. Text telemetry (flow logs, Zeek `dns.log`, Unbound/BIND
    /// query logs), compressed or not, and uncompressed captures and dnstap files are
    /// streamed and need no such cap.
    pub max_document_mib: u64,
}

impl Default for IngestSection {
    fn default() -> Self {
        let d = botwatch_feeds::input::Limits::default();
        IngestSection {
            max_gib: d.max_bytes >> 30,
            max_ratio: d.max_ratio,
            max_document_mib: d.max_document >> 20,
        }
    }
}

impl IngestSection {
    pub fn limits(&self) -> botwatch_feeds::input::Limits {
        botwatch_feeds::input::Limits {
            max_bytes: self.max_gib.saturating_mul(1 << 30),
            max_ratio: self.max_ratio.max(1),
            max_document: self.max_document_mib.saturating_mul(1 << 20),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichSection {
    /// A directory with newer ip-location-db files (`botwatch geo import`); the shipped
    /// tables are used when unset.
    pub ipasn_dir: Option<PathBuf>,
}

/// A user-defined generic feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenericFeed {
    pub id: String,
    #[serde(flatten)]
    pub mapping: GenericConfig,
}

impl Config {
    /// Reads `path` (`--config`, `BOTWATCH_CONFIG`), else the first of [`CONFIG_SEARCH`]
    /// that exists, else defaults.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let p = match path {
            Some(p) => p.to_path_buf(),
            None => match CONFIG_SEARCH.iter().map(PathBuf::from).find(|p| p.exists()) {
                Some(p) => p,
                None => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&p).with_context(|| format!("reading config {}", p.display()))?;
        let mut cfg: Config =
            toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?;
        cfg.adopt_bar_document()?;
        Ok(cfg)
    }

    /// `[share] bar_document`: the signed bar replaces `[bar]`. The document must still
    /// verify under the key it was adopted with (`bar adopt` checked that key against the
    /// partner's configured one), so an edited file is refused rather than obeyed.
    pub fn adopt_bar_document(&mut self) -> Result<()> {
        let Some(path) = self.share.as_ref().and_then(|s| s.bar_document.clone()) else { return Ok(()) };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading bar document {}", path.display()))?;
        let doc: botwatch_share::bar::SignedBar = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a signed bar document", path.display()))?;
        botwatch_share::bar::verify(&doc, &doc.public_key)
            .with_context(|| format!("{}: the signature does not verify", path.display()))?;
        self.bar = serde_json::from_value(doc.bar.clone())
            .with_context(|| format!("{}: the bar's thresholds do not fit [bar]", path.display()))?;
        self.bar_version = Some(format!("{} {}", doc.issuer, doc.version));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let c: Config = toml::from_str(include_str!("../../../botwatch.example.toml")).unwrap();
        assert!(!c.feeds.is_empty());
        assert_eq!(c.store.dedup_window_hours, 24);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<Config>("[store]\npaht = 'x'\n").is_err());
    }
}
