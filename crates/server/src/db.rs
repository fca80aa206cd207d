//! The store from async handlers: a pool of connections (SQLite files or PostgreSQL
//! sessions), each used by one blocking task at a time. SQLite's WAL, like PostgreSQL's
//! MVCC, lets them read while a writer (an ingest, a worker, a case action here) writes.

use crate::api::ApiError;
use botwatch_store::StoreConfig;
use botwatch_store::any::AnyStore;
use botwatch_store::postgres::PgStore;
use botwatch_store::sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where the pool's connections go.
#[derive(Debug, Clone)]
pub enum Source {
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    source: Source,
    cfg: StoreConfig,
    /// Opened with `SqliteStore::open_read_only`: this user may not write the store.
    read_only: bool,
    idle: Mutex<Vec<AnyStore>>,
    /// Bounds the connections open at once; a request beyond it waits for one.
    permits: tokio::sync::Semaphore,
}

impl Db {
    /// Connections to the database at `path`, opened as needed, at most `max` at once.
    pub fn open(path: PathBuf, cfg: StoreConfig, max: usize, read_only: bool) -> anyhow::Result<Db> {
        Db::open_source(Source::Sqlite(path), cfg, max, read_only)
    }

    /// Connections to `source`, opened as needed, at most `max` at once.
    pub fn open_source(source: Source, cfg: StoreConfig, max: usize, read_only: bool) -> anyhow::Result<Db> {
        // Open one now: a wrong path or a too-new schema fails at start, not per request.
        let first = open_reader(&source, &cfg, read_only)?;
        Ok(Db {
            inner: Arc::new(Inner {
                source,
                cfg,
                read_only,
                idle: Mutex::new(vec![first]),
                permits: tokio::sync::Semaphore::new(max.max(1)),
            }),
        })
    }

    /// The store is served read-only (this user may not write it).
    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Runs `f` with a connection on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut AnyStore) -> anyhow::Result<T> + Send + 'static,
    {
        let _permit =
            self.inner.permits.acquire().await.map_err(|_| ApiError::unavailable("store closed"))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A PostgreSQL session the server closed (a restart, an idle timeout) is
            // dropped, not handed out.
            let taken = loop {
                let next = inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
                match next {
                    Some(s) if s.is_closed() => continue,
                    other => break other,
                }
            };
            let mut store = match taken {
                Some(s) => s,
                None => {
                    open_reader(&inner.source, &inner.cfg, inner.read_only).map_err(ApiError::internal)?
                }
            };
            let out = f(&mut store);
            inner.idle.lock().unwrap_or_else(|e| e.into_inner()).push(store);
            out.map_err(ApiError::from_anyhow)
        })
        .await
        .map_err(|e| ApiError::internal(anyhow::anyhow!("store task failed: {e}")))?
    }
}

/// One of the pool's connections, set up for the server's many small reads.
fn open_reader(source: &Source, cfg: &StoreConfig, read_only: bool) -> anyhow::Result<AnyStore> {
    let s = match source {
        Source::Sqlite(path) if read_only => {
            AnyStore::Sqlite(SqliteStore::open_read_only(path, cfg.clone())?)
        }
        Source::Sqlite(path) => AnyStore::Sqlite(SqliteStore::open(path, cfg.clone())?),
        Source::Postgres(url) => AnyStore::Postgres(Box::new(PgStore::connect(url, cfg.clone())?)),
    };
    s.tune_for_reads()?;
    Ok(s)
}
