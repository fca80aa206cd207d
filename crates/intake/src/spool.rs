//! The watched spool directory (`[intake] spool`): other tools drop report files there.
//!
//! A file is taken once it is complete: names starting with `.` or ending in `.part` or
//! `.tmp` are still being written (write, then rename), and a file changed in the last two
//! seconds is left for the next look. Each file is ingested (report, `.eml` or mbox), then
//! moved to `.done/<day>/`; one that cannot be read at all goes to `.failed/` beside a
//! `.error` note. The move comes after the report's transaction: a crash in between ingests
//! the file again next time, which the store recognises by its content hash (counted once).

use crate::pipeline::Ingestor;
use crate::{Delivered, Origin};
use anyhow::{Context, Result};
use botwatch_model::Timestamp;
use botwatch_store::Store;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A file younger than this may still be growing.
const SETTLE: Duration = Duration::from_secs(2);

/// The files waiting in `dir`, oldest first.
pub fn waiting(dir: &Path) -> Result<Vec<PathBuf>> {
    let now = SystemTime::now();
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading spool {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
            continue;
        }
        let meta = e.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().unwrap_or(now);
        if now.duration_since(modified).unwrap_or_default() < SETTLE {
            continue;
        }
        files.push((modified, e.path()));
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Ingests every waiting file; stops at the first store error (the file stays for the
/// next look) and returns what was done.
pub fn drain(
    ing: &Ingestor<'_>,
    store: &mut dyn Store,
    dir: &Path,
    feed: Option<&str>,
    now: impl Fn() -> Timestamp,
) -> Result<Delivered> {
    let mut out = Delivered::default();
    for path in waiting(dir)? {
        let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let at = now();
        let origin = Origin {
            feed,
            source: format!("spool:{}", path.display()),
            observed: at,
            archive: Some(dir.join(".done").join(at.day()).join(&name).display().to_string()),
        };
        match crate::ingest_file(ing, store, &path, &name, &origin, &|_| {}) {
            Ok(d) => {
                move_to(&path, &dir.join(".done").join(at.day()))?;
                out.absorb(d);
            }
            Err(e) if crate::is_store_error(&e) => return Err(e),
            Err(e) => {
                // Not a report botwatch can read: kept aside with the reason, not retried.
                let failed = dir.join(".failed");
                let dest = move_to(&path, &failed)?;
                let note = dest.with_file_name(format!(
                    "{}.error",
                    dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
                ));
                std::fs::write(&note, format!("{e:#}\n"))?;
                out.unreadable.push(format!("{name}: {e:#}"));
            }
        }
    }
    Ok(out)
}

/// Moves `path` into `dir` (made if missing); a name already there gets a numbered suffix.
fn move_to(path: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().context("a spool file without a name")?.to_string_lossy().to_string();
    let mut dest = dir.join(&name);
    let mut n = 1;
    while dest.exists() {
        dest = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(path, &dest)
        .with_context(|| format!("moving {} to {}", path.display(), dest.display()))?;
    Ok(dest)
}
