//! The store from async handlers: a few SQLite connections, each used by one blocking task
//! at a time. WAL lets them read while the ingest writer (another process, or a case
//! action here) writes.

use crate::api::ApiError;
use botwatch_store::StoreConfig;
use botwatch_store::sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    cfg: StoreConfig,
    /// Opened with `SqliteStore::open_read_only`: this user may not write the store.
    read_only: bool,
    idle: Mutex<Vec<SqliteStore>>,
    /// Bounds the connections open at once; a request beyond it waits for one.
    permits: tokio::sync::Semaphore,
}

impl Db {
    /// Connections to the database at `path`, opened as needed, at most `max` at once.
    pub fn open(path: PathBuf, cfg: StoreConfig, max: usize, read_only: bool) -> anyhow::Result<Db> {
        // Open one now: a wrong path or a too-new schema fails at start, not per request.
        let first = open_reader(&path, &cfg, read_only)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path,
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
        F: FnOnce(&mut SqliteStore) -> anyhow::Result<T> + Send + 'static,
    {
        let _permit =
            self.inner.permits.acquire().await.map_err(|_| ApiError::unavailable("store closed"))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let taken = inner.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut store = match taken {
                Some(s) => s,
                None => open_reader(&inner.path, &inner.cfg, inner.read_only).map_err(ApiError::internal)?,
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
fn open_reader(path: &std::path::Path, cfg: &StoreConfig, read_only: bool) -> anyhow::Result<SqliteStore> {
    let s = if read_only {
        SqliteStore::open_read_only(path, cfg.clone())?
    } else {
        SqliteStore::open(path, cfg.clone())?
    };
    s.tune_for_reads()?;
    Ok(s)
}
