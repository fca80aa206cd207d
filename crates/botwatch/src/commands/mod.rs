//! What each command does, dispatched from [`run`]; a module per command family.

mod eval;
mod fetch;
mod ingest;
mod leases;
mod notify;
mod scan;
mod sensor;
mod serve;
mod share;
mod token;
mod worker;

use crate::cli::*;
use anyhow::{Context, Result, bail};
use botwatch::config::Config;
use botwatch::output::{self, Format};
use botwatch::pipeline::{Ingestor, ReportSummary};
use botwatch_model::{Clock, SystemClock, Timestamp, parse_timestamp};
use botwatch_store::{GroupBy, Store, any::AnyStore};
use std::io::Write;
use std::process::ExitCode;
pub(crate) use {
    fetch::*, ingest::*, leases::*, notify::*, scan::*, sensor::*, serve::*, share::*, token::*, worker::*,
};

/// For commands that write: a writer already at work (an ingest) is waited for, with
/// progress, rather than failing with "database is locked".
pub(crate) fn open_store(cfg: &Config, db: &DbArg) -> Result<AnyStore> {
    botwatch::serve::open_write(cfg, &db.db.clone().unwrap_or_else(|| cfg.store.path.clone()))
}

/// For commands that only read: opened read-only (nothing created, migrated or written), so a
/// user who may read the store but not write it can query it.
pub(crate) fn open_read(cfg: &Config, db: &DbArg) -> Result<AnyStore> {
    botwatch::serve::open_read(cfg, &db.db.clone().unwrap_or_else(|| cfg.store.path.clone()))
}

pub(crate) fn open_existing(cfg: &Config, db: &DbArg) -> Result<AnyStore> {
    botwatch::serve::require_store(cfg, &db.db.clone().unwrap_or_else(|| cfg.store.path.clone()))?;
    open_store(cfg, db)
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let cfg = Config::load(cli.config.as_deref())?;
    let families = botwatch::families(&cfg);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match cli.cmd {
        Cmd::Ingest { files, feed, db, json, quiet } => {
            return ingest(&cfg, files, feed, db, json, quiet, &mut out);
        }
        Cmd::Feeds { json, filter } => {
            let registry = botwatch::registry(&cfg);
            let feeds: Vec<_> = registry
                .all()
                .iter()
                .filter(|f| filter.as_deref().is_none_or(|x| f.id.contains(x)))
                .collect();
            if json {
                for f in feeds {
                    let v = serde_json::json!({"id": f.id, "name": f.name, "provider": f.provider, "accuracy": f.accuracy, "documentation": f.documentation, "description": f.description});
                    writeln!(out, "{v}")?;
                }
            } else {
                let rows: Vec<Vec<String>> = feeds
                    .iter()
                    .map(|f| {
                        vec![f.id.clone(), f.provider.clone(), f.description.clone(), f.documentation.clone()]
                    })
                    .collect();
                output::table(&mut out, &["feed", "provider", "what", "documentation"], &rows)?;
                writeln!(out, "\n{} feeds", rows.len())?;
            }
        }
        Cmd::Events { filters, db, format } => {
            let store = open_read(&cfg, &db)?;
            let mut q = filters.query(&families)?;
            if format == Format::Table && q.limit.is_none() {
                q.limit = Some(100);
            }
            let evs = store.events(&q)?;
            match format {
                Format::Jsonl => {
                    for e in &evs {
                        writeln!(out, "{}", output::event_json(e, false))?;
                    }
                }
                Format::Csv => output::csv_rows(
                    &mut out,
                    output::EVENT_COLUMNS,
                    &evs.iter().map(output::event_row).collect::<Vec<_>>(),
                )?,
                Format::Table => {
                    output::table(
                        &mut out,
                        output::EVENT_COLUMNS,
                        &evs.iter().map(output::event_row).collect::<Vec<_>>(),
                    )?;
                    if let Some(last) = evs.last()
                        && evs.len() as u64 == q.limit.unwrap_or(u64::MAX)
                    {
                        writeln!(out, "… more: --after {}", last.id)?;
                    }
                }
            }
        }
        Cmd::Observations { filters, db, format } => {
            let store = open_read(&cfg, &db)?;
            let obs = store.observations(&filters.query(&families)?)?;
            let header = [
                "id",
                "subject",
                "classification.type",
                "malware.name",
                "asn",
                "cc",
                "first_seen",
                "last_seen",
                "count",
                "sources",
                "confidence",
            ];
            let rows: Vec<Vec<String>> = obs
                .iter()
                .map(|o| {
                    vec![
                        o.id.to_string(),
                        o.subject.clone(),
                        o.classification_type.clone(),
                        o.family.clone(),
                        o.asn.map(|a| a.to_string()).unwrap_or_default(),
                        o.cc.clone().unwrap_or_default(),
                        o.first_seen.to_rfc3339(),
                        o.last_seen.to_rfc3339(),
                        o.count.to_string(),
                        o.sources.keys().cloned().collect::<Vec<_>>().join(" "),
                        format!("{:.2}", o.confidence),
                    ]
                })
                .collect();
            output::emit(&mut out, format, &obs, &header, &rows)?;
        }
        Cmd::Export {
            format: f @ (ExportFormat::Stix | ExportFormat::MispFeed),
            db,
            output: file,
            out: dir,
            partner,
            tlp,
            sightings,
            home_addresses,
            ..
        } => {
            let store = open_existing(&cfg, &db)?;
            let tlp = botwatch_model::Tlp::from_name(&tlp)
                .with_context(|| format!("--tlp: not a TLP level: {tlp:?}"))?;
            let (who, e) =
                botwatch::share::entitlement(&cfg, partner.as_deref(), tlp, sightings, home_addresses)?;
            let now = SystemClock.now();
            let me = botwatch::share::share_cfg(&cfg);
            let (channel, sent) = if matches!(f, ExportFormat::Stix) {
                let mut w: Box<dyn Write> = match &file {
                    Some(p) => Box::new(std::io::BufWriter::new(
                        std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                    )),
                    None => Box::new(&mut out),
                };
                ("stix-export", botwatch::share::export_stix(&cfg, &store, &who, &e, &mut w, now)?)
            } else {
                let dir = dir.or(file).context("--format misp-feed needs --out DIR")?;
                let home = botwatch::share::home_test(&cfg)?;
                let (sent, (events, objects, attributes)) =
                    botwatch_share::publish::misp_feed(&store, &me, &home, &e, &dir)?;
                eprintln!(
                    "MISP feed in {}: {events} events, {objects} objects, {attributes} attributes",
                    dir.display()
                );
                ("misp-feed", sent)
            };
            eprintln!(
                "{} objects exported for {who}, {} withheld by the TLP gate (highest exported: {})",
                sent.objects,
                sent.withheld,
                sent.tlp_max.map(|t| format!("TLP:{}", t.as_str())).unwrap_or_else(|| "none".into())
            );
            if partner.is_some() {
                // Written to a file for the partner, not delivered: "exported", never "sent".
                botwatch::share::audit(
                    &store,
                    now,
                    &who,
                    "exported",
                    channel,
                    None,
                    sent.objects,
                    sent.withheld,
                    sent.tlp_max,
                    None,
                )?;
            }
        }
        Cmd::Share { cmd } => share_cmd(&cfg, cmd, &mut out)?,
        Cmd::Taxii { cmd } => taxii_cmd(&cfg, cmd, &families, &mut out)?,
        Cmd::Federation { cmd } => federation_cmd(&cfg, cmd, &mut out)?,
        Cmd::Bar { cmd } => bar_cmd(&cfg, cmd, &mut out)?,
        Cmd::Completions { shell } => {
            use clap::CommandFactory;
            // Into memory first: clap_complete panics on a failed write (a closed pipe).
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "botwatch", &mut buf);
            out.write_all(&buf)?;
        }
        Cmd::Man { out: dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            let n = std::fs::read_dir(&dir)?
                .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1")))
                .count();
            writeln!(
                out,
                "{n} man pages in {} (read one with `man -l {}/botwatch.1`)",
                dir.display(),
                dir.display()
            )?;
        }
        Cmd::Export { format, filters, db, output: file, .. } => {
            let store = open_read(&cfg, &db)?;
            let mut q = filters.query(&families)?;
            let mut w: Box<dyn Write> = match &file {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(&mut out),
            };
            let page = 10_000u64;
            let want = q.limit;
            let mut written = 0u64;
            let mut first = true;
            loop {
                q.limit = Some(want.map(|w| (w - written).min(page)).unwrap_or(page));
                if q.limit == Some(0) {
                    break;
                }
                let evs = store.events(&q)?;
                if evs.is_empty() {
                    break;
                }
                match format {
                    ExportFormat::Intelmq | ExportFormat::Jsonl => {
                        for e in &evs {
                            writeln!(
                                w,
                                "{}",
                                output::event_json(e, matches!(format, ExportFormat::Intelmq))
                            )?;
                        }
                    }
                    ExportFormat::Stix | ExportFormat::MispFeed => unreachable!("handled above"),
                    ExportFormat::Csv => {
                        let rows: Vec<_> = evs.iter().map(output::event_row).collect();
                        if first {
                            output::csv_rows(&mut w, output::EVENT_COLUMNS, &rows)?;
                        } else {
                            let mut cw = csv::Writer::from_writer(&mut w);
                            for r in rows {
                                cw.write_record(r)?;
                            }
                            cw.flush()?;
                        }
                    }
                }
                first = false;
                written += evs.len() as u64;
                q.after_id = evs.last().map(|e| e.id);
            }
            w.flush()?;
        }
        Cmd::Stats { by, filters, db, format } => {
            let store = open_read(&cfg, &db)?;
            let g = match by {
                By::Family => GroupBy::Family,
                By::Asn => GroupBy::Asn,
                By::Country => GroupBy::Country,
                By::Day => GroupBy::Day,
                By::Feed => GroupBy::Feed,
                By::Type => GroupBy::Type,
            };
            let rows = store.stats(g, &filters.query(&families)?)?;
            let ipdb = if g == GroupBy::Asn { Some(botwatch::ipdb(&cfg)?) } else { None };
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut v = vec![r.key.clone(), r.events.to_string(), r.subjects.to_string()];
                    if let Some(db) = &ipdb {
                        v.push(r.key.parse().ok().and_then(|a| db.as_name(a)).unwrap_or("").to_string());
                    }
                    v
                })
                .collect();
            let mut header = vec!["key", "events", "distinct_subjects"];
            if ipdb.is_some() {
                header.push("as_name");
            }
            output::emit(&mut out, format, &rows, &header, &table)?;
        }
        Cmd::Rejects { feed, report, limit, db, format } => {
            let store = open_read(&cfg, &db)?;
            let rows = store.rejects(report, feed.as_deref(), limit)?;
            let table: Vec<_> = rows.iter().map(output::reject_row).collect();
            output::emit(&mut out, format, &rows, output::REJECT_COLUMNS, &table)?;
        }
        Cmd::Reports { cmd: Some(ReportsCmd::Daily { day, out: dir, db }), .. } => {
            daily_reports(&cfg, &db, day.as_deref(), &dir, &mut out)?;
        }
        Cmd::Leases { cmd } => leases(&cfg, cmd, &mut out)?,
        Cmd::Attribute { ip, at, port, db, json } => {
            let store = open_read(&cfg, &db)?;
            let at = parse_timestamp(&at).with_context(|| format!("not a time: {at:?}"))?;
            let attr = botwatch::isp::attributor(&cfg, &store)?;
            let org = attr.constituency.as_ref().and_then(|c| {
                let asn = botwatch::ipdb(&cfg).ok().and_then(|db| db.lookup(ip)).and_then(|i| i.asn);
                c.org_for(ip, asn).cloned()
            });
            let answer = attr.index.attribute(ip, port, at);
            if json {
                let v =
                    serde_json::json!({"ip": ip, "port": port, "at": at, "org": org, "attribution": answer});
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "{ip}{} at {}",
                    port.map(|p| format!(" port {p}")).unwrap_or_default(),
                    at.to_rfc3339()
                )?;
                match &org {
                    Some(o) => writeln!(
                        out,
                        "  organisation: {} ({}), abuse: {}",
                        o.name,
                        o.id,
                        o.abuse_emails.join(", ")
                    )?,
                    None => writeln!(out, "  organisation: not in the constituency")?,
                }
                writeln!(out, "  subscriber:   {}", describe_attribution(&answer))?;
            }
        }
        Cmd::Cases { cmd, db } => {
            let mut store = if cmd.only_reads() { open_read(&cfg, &db)? } else { open_existing(&cfg, &db)? };
            let attr = botwatch::isp::attributor(&cfg, &store)?;
            // A subscriber is looked up by the same keyed pseudonym its records were stored
            // under; one no record and no case names is unknown, not "meets the bar".
            let cmd = match cmd {
                botwatch::cases_cmd::CasesCmd::Status { who, json }
                    if who.parse::<std::net::IpAddr>().is_err() =>
                {
                    let stored = match botwatch::keys::pseudonymiser_read(&cfg, &store)? {
                        Some(p) if !attr.index.knows_subscriber(&who) => p.pseudonym(&who),
                        _ => who.clone(),
                    };
                    let q =
                        botwatch_cases::CaseQuery { subscriber: Some(stored.clone()), ..Default::default() };
                    if !attr.index.knows_subscriber(&stored)
                        && botwatch_store::cases::CaseStore::cases(&store, &q)?.is_empty()
                    {
                        bail!(
                            "unknown subscriber {who:?}: no lease record and no case names it (not a verdict)"
                        );
                    }
                    botwatch::cases_cmd::CasesCmd::Status { who: stored, json }
                }
                c => c,
            };
            let cc = botwatch_cases::CasesConfig { cases: cfg.cases.clone(), bar: cfg.bar.clone() };
            botwatch::cases_cmd::run(&cmd, &mut store, &attr, &SystemClock, &cc, &mut out)?;
        }
        Cmd::Compliance { args, db } => {
            let store = open_read(&cfg, &db)?;
            let attr = botwatch::isp::attributor(&cfg, &store)?;
            let cc = botwatch_cases::CasesConfig { cases: cfg.cases.clone(), bar: cfg.bar.clone() };
            botwatch::cases_cmd::run_compliance(&args, &store, &attr, &SystemClock, &cc, &mut out)?;
        }
        Cmd::Notify { cmd } => notify(&cfg, cmd, &mut out)?,
        Cmd::Scan { files, db, json, ignore_validity, no_store, no_detect } => {
            let opts = ScanOpts { json, ignore_validity, no_store, no_detect };
            return scan(&cfg, &files, &db, opts, &mut out);
        }
        Cmd::Sensor { cmd } => sensor(&cfg, cmd, &mut out)?,
        Cmd::Eval { cmd: EvalCmd::Flows { paths, truth, json } } => {
            return eval::eval_flows(&cfg, &paths, truth.as_deref(), json, &mut out);
        }
        Cmd::Eval { cmd: EvalCmd::Dga { dir, folds, json } } => {
            return eval::eval_dga(&dir, folds, json, &mut out);
        }
        Cmd::Dga { cmd: DgaCmd::Score { domains, json } } => {
            let names: Vec<String> = if domains.is_empty() {
                std::io::stdin().lines().map_while(|l| l.ok()).filter(|l| !l.trim().is_empty()).collect()
            } else {
                domains
            };
            let model = botwatch_telemetry::detect::dga::DgaModel::builtin();
            for n in botwatch_telemetry::detect::score_names(names.iter().map(|n| n.trim())) {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&n)?)?;
                } else {
                    writeln!(
                        out,
                        "{:.3}  {:<5} {:<40} {}",
                        n.score,
                        if n.dga { "DGA" } else { "ok" },
                        n.domain,
                        model.explain(&n.domain)
                    )?;
                }
            }
        }
        Cmd::WalledGarden { cmd: WalledGardenCmd::Export { format, db } } => {
            let store = open_read(&cfg, &db)?;
            let bytes = botwatch::isp::walled_garden_export(&cfg, &store, &format, SystemClock.now())?;
            out.write_all(&bytes)?;
        }
        Cmd::Reports { cmd: None, limit, db, format } => {
            let store = open_read(&cfg, &db)?;
            let reps = store.reports(limit)?;
            let header =
                ["id", "feed", "name", "ingested", "events", "duplicates", "merged", "rejects", "warnings"];
            let rows: Vec<Vec<String>> = reps
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.feed.clone(),
                        r.name.clone().unwrap_or_default(),
                        r.ingested_at.to_rfc3339(),
                        r.events.to_string(),
                        r.duplicates.to_string(),
                        r.merged.to_string(),
                        r.rejects.to_string(),
                        r.warnings.as_array().map(|a| a.len()).unwrap_or(0).to_string(),
                    ]
                })
                .collect();
            output::emit(&mut out, format, &reps, &header, &rows)?;
        }
        Cmd::Fetch { feed, db, json } => return fetch(&cfg, feed, db, json, &mut out),
        Cmd::Geo { cmd } => match cmd {
            GeoCmd::Lookup { ips } => {
                let db = botwatch::ipdb(&cfg)?;
                for ip in ips {
                    let i = db.lookup(ip);
                    writeln!(
                        out,
                        "{ip}\tAS{}\t{}\t{}",
                        i.as_ref().and_then(|i| i.asn).map(|a| a.to_string()).unwrap_or_else(|| "?".into()),
                        i.as_ref()
                            .and_then(|i| i.cc_str().map(str::to_string))
                            .unwrap_or_else(|| "??".into()),
                        i.as_ref()
                            .and_then(|i| i.as_name.as_ref().map(|s| s.to_string()))
                            .unwrap_or_default()
                    )?;
                }
                writeln!(out, "# {}", botwatch_enrich::CREDIT)?;
            }
            GeoCmd::Import { from, to } => {
                let db = botwatch_enrich::IpDb::load_dir(&from).context("checking the new files")?;
                std::fs::create_dir_all(&to)?;
                for f in botwatch_enrich::FILES {
                    std::fs::copy(from.join(f), to.join(f)).with_context(|| format!("copying {f}"))?;
                }
                let (segments, bytes) = db.stats();
                writeln!(
                    out,
                    "Installed {} segments ({:.1} MB in memory) into {}.",
                    segments,
                    bytes as f64 / 1e6,
                    to.display()
                )?;
                writeln!(out, "Set in botwatch.toml:\n[enrich]\nipasn_dir = {:?}", to.display().to_string())?;
            }
        },
        Cmd::Synth { rows, infected, day, seed } => {
            out.write_all(
                botwatch_feeds::shadowserver::synth::event4_sinkhole(rows, infected, &day, seed).as_bytes(),
            )?;
        }
        Cmd::Serve { listen, db } => serve(&cfg, listen, &db)?,
        Cmd::Worker { idle_exit, name, db } => worker(&cfg, idle_exit.map(Into::into), name, db)?,
        Cmd::Run { listen, db } => {
            // The web side prints from another thread: stdout must not stay locked here.
            out.flush()?;
            drop(out);
            botwatch::runner::run(botwatch::runner::RunArgs {
                config: cli.config.clone(),
                db: db.db,
                listen,
            })?;
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Token { cmd } => token(&cfg, cmd, &mut out)?,
        Cmd::Prune { days, db, json } => {
            let Some(days) = days.or(cfg.store.retain_days) else {
                bail!("no retention period: set [store] retain_days or pass --days");
            };
            let mut store = open_existing(&cfg, &db)?;
            let before =
                Timestamp::from_micros(SystemClock.now().micros() - i64::from(days) * 86_400_000_000);
            let s = store.prune(before)?;
            let archived = botwatch::fetch::prune_archive(&cfg.fetch, before)?;
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"before": before, "store": s, "archived_reports": archived})
                )?;
            } else {
                writeln!(
                    out,
                    "older than {} ({days} days) deleted: {} events, {} observations, {} rejected lines, {} lease records, {} exposures, {} shared objects naming addresses, {} archived reports; evidence cleared on {} closed cases and {} finished notices",
                    before.to_rfc3339(),
                    s.events,
                    s.observations,
                    s.rejects,
                    s.lease_records,
                    s.exposures,
                    s.shared_objects,
                    archived,
                    s.closed_case_evidence,
                    s.notice_payloads
                )?;
            }
        }
        Cmd::Demo { db, synthetic_rows, store_url } => {
            let registry = botwatch::registry(&cfg);
            let ipdb = botwatch::ipdb(&cfg)?;
            let ing = Ingestor {
                registry: &registry,
                ipdb: &ipdb,
                families: &families,
                limits: cfg.ingest.limits(),
                publish: None,
            };
            let r = botwatch::demo::run(&db, store_url.as_deref(), &ing, synthetic_rows, &mut out, true)?;
            out.flush()?;
            if !r.failed.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_summary(out: &mut dyn Write, all: &[ReportSummary], secs: f64) -> Result<()> {
    writeln!(
        out,
        "{:<48} {:<34} {:>8} {:>6} {:>6} {:>6} {:>5}",
        "report", "feed", "events", "dups", "merged", "reject", "drift"
    )?;
    for s in all {
        let name: String = if s.name.chars().count() > 48 {
            s.name.chars().take(47).chain(['…']).collect()
        } else {
            s.name.clone()
        };
        if !s.new {
            writeln!(out, "{name:<48} {:<34} already ingested (same content), skipped", s.feed)?;
            continue;
        }
        writeln!(
            out,
            "{name:<48} {:<34} {:>8} {:>6} {:>6} {:>6} {:>5}",
            s.feed, s.events, s.duplicates, s.merged, s.rejects, s.drift_warnings
        )?;
        for w in s.warnings.iter().take(5) {
            writeln!(out, "    warning: {}", w.message)?;
        }
    }
    let ev: u64 = all.iter().map(|s| s.events).sum();
    let rj: u64 = all.iter().map(|s| s.rejects).sum();
    writeln!(
        out,
        "{} reports, {} events, {} rejects in {:.2} s ({:.0} events/s)",
        all.len(),
        ev,
        rj,
        secs,
        ev as f64 / secs.max(1e-9)
    )?;
    if rj > 0 {
        writeln!(out, "Rejected lines are kept: `botwatch rejects` lists them with line number and reason.")?;
    }
    Ok(())
}

pub(crate) fn describe_attribution(a: &botwatch_enrich::subscriber::Attribution<'_>) -> String {
    use botwatch_enrich::subscriber::Attribution;
    let rec = |r: &botwatch_enrich::subscriber::RecordRef<'_>| {
        let ids: Vec<String> = r.identifiers().iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} [{} – {}] from {} line {}{}",
            r.subscriber(),
            r.start().to_rfc3339(),
            r.end().map(|e| e.to_rfc3339()).unwrap_or_else(|| "open".into()),
            r.source(),
            r.line(),
            if ids.is_empty() { String::new() } else { format!(" ({})", ids.join(", ")) }
        )
    };
    match a {
        Attribution::Exact { record } => rec(record),
        Attribution::Ambiguous { candidates, reason } => {
            let list: Vec<String> =
                candidates.iter().map(|c| format!("\n    candidate: {}", rec(c))).collect();
            format!("AMBIGUOUS ({reason:?}) — not attributed{}", list.concat())
        }
        Attribution::NotFound { before, after } => {
            let mut s = "NOT FOUND — no record covers that instant".to_string();
            if let Some(b) = before {
                s.push_str(&format!("\n    nearest before: {}", rec(b)));
            }
            if let Some(a) = after {
                s.push_str(&format!("\n    nearest after:  {}", rec(a)));
            }
            s
        }
    }
}
