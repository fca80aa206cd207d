//! `botwatch leases`: lease and accounting records for subscriber attribution.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::Result;
use botwatch::config::Config;
use botwatch_model::SystemClock;
use std::io::Write;

pub(crate) fn leases(cfg: &Config, cmd: LeasesCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch_store::leases::LeaseStore;
    match cmd {
        LeasesCmd::Import { files, format, db, json } => {
            let mut store = open_store(cfg, &db)?;
            for f in &files {
                let s = botwatch::isp::import_leases(cfg, &mut store, f, format.as_deref(), &SystemClock)?;
                if json {
                    writeln!(out, "{}", serde_json::to_string(&s)?)?;
                } else if s.new {
                    writeln!(
                        out,
                        "{}: {} records ({}), {} rejected lines",
                        s.file, s.records, s.format, s.rejects
                    )?;
                    for (line, why) in &s.reject_samples {
                        writeln!(out, "    line {line}: {why}")?;
                    }
                } else {
                    writeln!(out, "{}: already imported (same content), skipped", s.file)?;
                }
            }
        }
        LeasesCmd::List { db, json } => {
            let store = open_read(cfg, &db)?;
            for i in store.lease_imports()? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&i)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>4}  {:<12} {:>9} records {:>6} rejects  {}  {}",
                        i.id,
                        i.import.format,
                        i.records,
                        i.import.rejects,
                        i.import.imported_at.to_rfc3339(),
                        i.import.name
                    )?;
                }
            }
        }
    }
    Ok(())
}
