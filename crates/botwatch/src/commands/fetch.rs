//! `botwatch fetch`: the configured HTTP(S) feeds, once.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::{Result, bail};
use botwatch::config::Config;
use botwatch::pipeline::Ingestor;
use botwatch_model::SystemClock;
use std::io::Write;
use std::process::ExitCode;

/// Fetches each configured feed; exit code 4 when some could not be fetched.
pub(crate) fn fetch(
    cfg: &Config,
    feed: Option<String>,
    db: DbArg,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let families = botwatch::families(cfg);
    let sources: Vec<_> = cfg.feeds.iter().filter(|s| feed.is_none() || s.feed == feed).cloned().collect();
    if sources.is_empty() {
        bail!(
            "no feeds to fetch: add [[feeds]] entries with a url to botwatch.toml (see botwatch.example.toml)"
        );
    }
    for s in &sources {
        botwatch::fetch::check_url(&s.url)?;
    }
    let registry = botwatch::registry(cfg);
    let ipdb = botwatch::ipdb(cfg)?;
    let mut store = open_store(cfg, &db)?;
    let ing = Ingestor {
        registry: &registry,
        ipdb: &ipdb,
        families: &families,
        limits: cfg.ingest.limits(),
        publish: None,
    };
    let fetcher = botwatch::fetch::Fetcher::new(&cfg.fetch, &SystemClock)?;
    let mut failed = 0;
    for s in &sources {
        let o = fetcher.fetch(s, &mut store, &ing);
        if o.error.is_some() {
            failed += 1;
        }
        if json {
            writeln!(out, "{}", serde_json::to_string(&o)?)?;
        } else {
            let ev: u64 = o.reports.iter().map(|r| r.events).sum();
            let rj: u64 = o.reports.iter().map(|r| r.rejects).sum();
            writeln!(
                out,
                "{:<60} {:<14} {:>7} events {:>5} rejects  {}",
                o.url,
                o.status,
                ev,
                rj,
                o.error.clone().unwrap_or_default()
            )?;
        }
    }
    out.flush()?;
    return Ok(if failed > 0 { ExitCode::from(4) } else { ExitCode::SUCCESS });
    #[allow(unreachable_code)]
    Ok(ExitCode::SUCCESS)
}
