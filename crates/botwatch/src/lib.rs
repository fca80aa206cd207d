//! The botwatch binary's library half: configuration, the ingest pipeline, fetching,
//! output formats and the demo. `main.rs` only parses arguments and calls in here, so the
//! integration tests and benches drive exactly what the CLI runs.

pub mod cases_cmd;
pub mod config;
pub mod demo;
pub mod eval;
pub mod federation;
pub mod isp;
pub mod keys;
pub mod output;
pub mod runner;
pub mod sensor;
pub mod serve;
pub mod share;

// The pipeline and fetching live in the intake crate, shared with the server (HTTP push).
pub use botwatch_intake::{fetch, pipeline};

use anyhow::Result;
use botwatch_feeds::registry::Registry;
use botwatch_model::FamilyTable;
use config::Config;

/// The feed registry with the generic feeds the config defines.
pub fn registry(cfg: &Config) -> Registry {
    let mut r = Registry::builtin();
    for g in &cfg.generic {
        r.add(botwatch_feeds::generic::custom_feed(&g.id, g.mapping.clone()));
    }
    r
}

/// The family alias table with the config's additions.
pub fn families(cfg: &Config) -> FamilyTable {
    let mut t = FamilyTable::default();
    for (alias, canon) in &cfg.families {
        t.add_alias(alias, canon);
    }
    t
}

/// The enrichment tables: a configured directory, else the shipped ones.
pub fn ipdb(cfg: &Config) -> Result<std::sync::Arc<botwatch_enrich::IpDb>> {
    Ok(match &cfg.enrich.ipasn_dir {
        Some(dir) => std::sync::Arc::new(botwatch_enrich::IpDb::load_dir(dir)?),
        None => botwatch_enrich::IpDb::builtin(),
    })
}

/// One delivery round of the outbox with the configured transports and the notice-link key
/// (`notify run`, and `botwatch run`'s notify job); `dry_run` renders instead of sending.
pub fn deliver_notices(
    cfg: &Config,
    store: &mut botwatch_store::any::AnyStore,
    clock: &dyn botwatch_model::Clock,
    dry_run: bool,
) -> Result<botwatch_notify::DrainSummary> {
    botwatch_notify::webhook::install_crypto_provider();
    let mut ncfg = cfg.notify.clone();
    ncfg.secret = keys::notify_key(cfg, store)?;
    let transports = botwatch_notify::Transports::from_config(&ncfg)?;
    let mut policy = cfg.notify.policy.clone();
    policy.dry_run = dry_run;
    Ok(botwatch_notify::drain(store, clock, &transports, &policy)?)
}

/// Standard input copied to a temporary file (deleted when dropped): the pipeline reads an
/// input twice, and a pipe can be read once.
pub fn spool_stdin() -> Result<tempfile::NamedTempFile> {
    let mut f = tempfile::NamedTempFile::new()?;
    std::io::copy(&mut std::io::stdin().lock(), &mut f)?;
    Ok(f)
}
