//! The web side, set up from the config: `botwatch serve` runs it alone, `botwatch run`
//! beside its jobs.

use crate::config::Config;
use anyhow::{Context, Result};
use botwatch_model::SystemClock;
use botwatch_store::{StoreConfig, any::AnyStore, postgres::PgStore, sqlite::SqliteStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn store_config(cfg: &Config) -> StoreConfig {
    StoreConfig { dedup_window_secs: cfg.store.dedup_window_hours as i64 * 3600 }
}

/// The PostgreSQL URL `[store] url` selects, its `env:`/`file:` indirection resolved.
pub fn store_url(cfg: &Config) -> Result<Option<String>> {
    match &cfg.store.url {
        None => Ok(None),
        Some(u) => {
            botwatch_model::secret::secret(u).map(Some).map_err(|e| anyhow::anyhow!("[store] url: {e}"))
        }
    }
}

/// The NATS URL `[nats] url` names, its `env:`/`file:` indirection resolved: intake then
/// publishes, and `botwatch worker`s store.
pub fn nats_url(cfg: &Config) -> Result<Option<String>> {
    match &cfg.nats.url {
        None => Ok(None),
        Some(u) => {
            botwatch_model::secret::secret(u).map(Some).map_err(|e| anyhow::anyhow!("[nats] url: {e}"))
        }
    }
}

/// The PostgreSQL URL to use for the store at `path`: `[store] url`, unless the command
/// was pointed at another SQLite file (`--db`).
fn postgres_for(cfg: &Config, path: &Path) -> Result<Option<String>> {
    if path != cfg.store.path {
        return Ok(None);
    }
    store_url(cfg)
}

fn connect(cfg: &Config, url: &str) -> Result<AnyStore> {
    let s = PgStore::connect(url, store_config(cfg))
        .with_context(|| format!("connecting to {}", botwatch_store::postgres::redact(url)))?;
    Ok(AnyStore::Postgres(Box::new(s)))
}

/// For commands that write: a writer already at work (an ingest) is waited for, with
/// progress, rather than failing with "database is locked".
pub fn open_write(cfg: &Config, path: &Path) -> Result<AnyStore> {
    if let Some(url) = postgres_for(cfg, path)? {
        return connect(cfg, &url);
    }
    let mut s = SqliteStore::open(path, store_config(cfg))
        .with_context(|| format!("opening database {}", path.display()))?;
    s.wait_for_writers()?;
    Ok(AnyStore::Sqlite(s))
}

/// A store that must be there already (commands that read it or act on what it holds). A
/// PostgreSQL store always is (the schema is made on first connection).
pub fn require_store(cfg: &Config, path: &Path) -> Result<()> {
    if postgres_for(cfg, path)?.is_some() {
        return Ok(());
    }
    if !path.exists() {
        anyhow::bail!(
            "no database at {} (run `botwatch ingest` or `botwatch demo` first, or pass --db)",
            path.display()
        );
    }
    Ok(())
}

/// For commands that only read: nothing created, migrated or written (PostgreSQL: the
/// session is the same; nothing these commands run writes).
pub fn open_read(cfg: &Config, path: &Path) -> Result<AnyStore> {
    if let Some(url) = postgres_for(cfg, path)? {
        return connect(cfg, &url);
    }
    require_store(cfg, path)?;
    Ok(AnyStore::Sqlite(
        SqliteStore::open_read_only(path, store_config(cfg))
            .with_context(|| format!("opening database {} read-only", path.display()))?,
    ))
}

/// The server's state, ready to serve.
pub struct Prepared {
    pub state: botwatch_server::Shared,
    pub listen: std::net::SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Builds the server's state from the config. A store this user may only read is served
/// read-only: pages and queries work, and whatever would write answers that it cannot.
pub fn prepare(cfg: &Config, path: PathBuf, listen: Option<std::net::SocketAddr>) -> Result<Prepared> {
    require_store(cfg, &path)?;
    let (store, read_only) = match open_write(cfg, &path) {
        Ok(s) => (s, false),
        Err(e) if matches!(e.downcast_ref(), Some(botwatch_store::StoreError::NotWritable { .. })) => {
            tracing::warn!(error = %format!("{e:#}"), "Serving the store read-only");
            (open_read(cfg, &path)?, true)
        }
        Err(e) => return Err(e),
    };
    let attributor = crate::isp::attributor(cfg, &store)?;
    drop(store);
    let constituency = match crate::isp::constituency(cfg)? {
        Some(c) => c,
        None => botwatch_enrich::owners::Constituency::new(Vec::new())?,
    };
    let mut scfg = cfg.server.clone();
    if let Some(l) = listen {
        scfg.listen = l;
    }
    // The key notice links were signed with: configured, else the store's (made on first
    // use by `notify run`, or here when the store is writable).
    let (token_secret, pseudonymiser) = if read_only {
        let store = open_read(cfg, &path)?;
        (crate::keys::notify_key_read(cfg, &store)?, crate::keys::pseudonymiser_read(cfg, &store)?)
    } else {
        let mut store = open_write(cfg, &path)?;
        (Some(crate::keys::notify_key(cfg, &mut store)?), crate::keys::pseudonymiser(cfg, &mut store)?)
    };
    if token_secret.is_none() {
        tracing::warn!("No notice-link key yet: the portal verifies no link until `notify run` has made one");
    }
    let deps = botwatch_server::Deps {
        db: botwatch_server::db::Db::open_source(
            match postgres_for(cfg, &path)? {
                Some(url) => botwatch_server::db::Source::Postgres(url),
                None => botwatch_server::db::Source::Sqlite(path),
            },
            store_config(cfg),
            scfg.db_connections,
            read_only,
        )?,
        constituency,
        attributor: Arc::new(attributor),
        engine: botwatch_cases::CaseEngine::new(cfg.cases.clone())?,
        bar: cfg.bar.clone(),
        advice: botwatch_notify::render::Advice::embedded()?,
        token_secret: token_secret.unwrap_or_default().into_bytes(),
        retain_days: cfg.store.retain_days,
        pseudonymiser,
        clock: Arc::new(SystemClock),
        share: match &cfg.share {
            Some(s) => Some(Arc::new(botwatch_server::taxii::Sharing::new(s.clone(), cfg.partners.clone())?)),
            None => None,
        },
        intake: Some(Arc::new(botwatch_server::push::Intake {
            publish: match nats_url(cfg)? {
                Some(url) => Some(Arc::new(botwatch_intake::stream::Nats::connect(&url, &cfg.nats)?)),
                None => None,
            },
            registry: crate::registry(cfg),
            ipdb: crate::ipdb(cfg)?,
            families: crate::families(cfg),
            limits: cfg.ingest.limits(),
            archive_dir: cfg.fetch.archive_dir.clone(),
        })),
    };
    let listen = scfg.listen;
    // Before binding: a bad certificate is a start-up error, not a failure per connection.
    let tls = scfg.tls()?;
    let state = botwatch_server::AppState::new(scfg, deps)?;
    Ok(Prepared { state, listen, tls })
}

/// Binds and serves until `shutdown` resolves. Prints the address (scripts and tests read
/// the port from it when asked for port 0).
pub async fn serve(
    p: Prepared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(p.listen)
        .await
        .with_context(|| format!("listening on {}", p.listen))?;
    let local = listener.local_addr()?;
    let s = if p.tls.is_some() { "https" } else { "http" };
    println!(
        "botwatch serving on {s}://{local}/ (dashboard), {s}://{local}/check (self-check portal), {s}://{local}/api/v1/openapi.json"
    );
    std::io::Write::flush(&mut std::io::stdout())?;
    botwatch_server::serve(listener, p.state, p.tls, shutdown).await?;
    Ok(())
}
