//! `botwatch eval flows`: the detectors scored on labelled captures; `botwatch eval dga`: the
//! DGA model scored leaving whole families out.

use anyhow::Result;
use botwatch::config::Config;
use botwatch::eval::{self, Truth};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) fn eval_flows(
    cfg: &Config,
    paths: &[PathBuf],
    truth: Option<&Path>,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let mut t = Truth::builtin()?;
    if let Some(p) = truth {
        t = t.with_file(p)?;
    }
    let caps = eval::captures(paths)?;
    let mut scores = Vec::new();
    for c in &caps {
        let s = eval::evaluate(c, &t, &cfg.sensor, &cfg.ingest.limits());
        if json {
            writeln!(out, "{}", serde_json::to_string(&s)?)?;
        } else {
            print_score(&s, out)?;
        }
        scores.push(s);
    }
    let tot = eval::totals(&scores);
    if json {
        writeln!(out, "{}", serde_json::json!({ "totals": tot }))?;
    } else {
        writeln!(
            out,
            "\n{} captures scored ({} skipped): infected clients found {} of {} ({} missed); \
             benign internal hosts flagged {} of {}; Internet hosts flagged as clients {} of {}; \
             internal hosts left open, not scored: {} ({} flagged)",
            tot.captures,
            tot.skipped,
            tot.found,
            tot.infected,
            tot.missed,
            tot.benign_flagged,
            tot.benign_hosts,
            tot.internet_flagged,
            tot.internet_hosts,
            tot.unknown_hosts,
            tot.unknown_flagged
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn eval_dga(dir: &Path, folds: usize, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    use botwatch_telemetry::detect::dga::{builtin_words, train};
    train::check_folds(folds).map_err(|e| anyhow::anyhow!("--{e}"))?;
    let corpus = train::Corpus::load(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let families = corpus.families().len();
    eprintln!(
        "{} benign and {} DGA names in {families} families; training {} models…",
        corpus.benign.len(),
        corpus.dga.len(),
        if folds == 0 { families } else { folds }
    );
    let e = train::leave_family_out(&corpus, &builtin_words(), folds);
    if json {
        let families: serde_json::Map<String, serde_json::Value> = e
            .families
            .iter()
            .map(|(f, (hit, total))| {
                let v = serde_json::json!({ "detected": hit, "names": total, "tpr": e.tpr(f) });
                (f.clone(), v)
            })
            .collect();
        let v = serde_json::json!({
            "folds": e.thresholds.len(),
            "thresholds": e.thresholds,
            "macro_tpr": e.macro_tpr(),
            "macro_tpr_100": { "tpr": e.macro_tpr_of(100), "families": e.families_with(100) },
            "benign": {
                "names": e.benign_names,
                "flagged_per_fold": e.benign_flagged,
                "fpr_mean": e.fpr(),
                "fpr_max": e.max_fpr(),
            },
            "top_sites": { "names": e.top_sites_names, "flagged_per_fold": e.top_sites_flagged },
            "families": families,
            "clients": clients(&e),
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{e}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The per-client figures of `eval dga --json`: the rule the DNS detector applies (a
/// client's NXDOMAIN names, their mean score), per family and on the benign clients.
fn clients(e: &botwatch_telemetry::detect::dga::train::FoldEvaluation) -> serde_json::Value {
    use botwatch_telemetry::detect::dga::train::CLIENT_NAMES;
    let families: serde_json::Map<String, serde_json::Value> = e
        .clients
        .iter()
        .filter(|(_, (_, total))| *total > 0)
        .map(|(f, (hit, total))| {
            let v =
                serde_json::json!({ "flagged": hit, "clients": total, "tpr": *hit as f64 / *total as f64 });
            (f.clone(), v)
        })
        .collect();
    let (mean, worst) = e.client_fpr();
    serde_json::json!({
        "names_per_client": CLIENT_NAMES,
        "macro_tpr": e.macro_client_tpr(),
        "benign": {
            "clients": e.benign_clients,
            "flagged_per_fold": e.benign_clients_flagged,
            "fpr_mean": mean,
            "fpr_max": worst,
        },
        "families": families,
    })
}

fn print_score(s: &eval::Score, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{}", s.capture)?;
    if let Some(why) = &s.skipped {
        writeln!(out, "  not scored: {why}")?;
        return Ok(());
    }
    writeln!(out, "  {} records, {} rejected; truth from {}", s.records, s.rejects, s.truth)?;
    for u in &s.unreadable {
        writeln!(out, "  unreadable: {u}")?;
    }
    let list = |v: &[eval::Flag]| {
        v.iter()
            .map(|f| {
                let detected = match f.detected_after_secs {
                    Some(d) => format!(", flagged by the records of the first {d} s"),
                    None => String::new(),
                };
                format!(
                    "{} ({}, first evidence after {} s{detected})",
                    f.client,
                    f.reasons.join("+"),
                    f.first_evidence_secs
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(out, "  infected found {}/{}: {}", s.found.len(), s.infected.len(), list(&s.found))?;
    if !s.missed.is_empty() {
        let m: Vec<String> = s
            .missed
            .iter()
            .map(|i| match s.missed_evidence.get(i) {
                Some(e) => format!("{i} ({e})"),
                None => i.to_string(),
            })
            .collect();
        writeln!(out, "  missed: {}", m.join(", "))?;
    }
    writeln!(
        out,
        "  benign internal hosts flagged {}/{} {}",
        s.benign_flagged.len(),
        s.benign_hosts,
        list(&s.benign_flagged)
    )?;
    writeln!(
        out,
        "  Internet hosts flagged as clients {}/{} {}",
        s.internet_flagged.len(),
        s.internet_hosts,
        list(&s.internet_flagged)
    )?;
    if s.unknown_hosts > 0 {
        writeln!(
            out,
            "  internal hosts left open (truth file, or no benign or malicious label), not scored: {}; flagged {}",
            s.unknown_hosts,
            list(&s.unknown_flagged)
        )?;
    }
    Ok(())
}
