//! `botwatch cases …` and `botwatch compliance`: the abuse desk's view of cases.
//!
//! Wiring (main.rs): `Cases { #[command(subcommand)] cmd: CasesCmd, #[command(flatten)] db }`
//! and `Compliance(ComplianceArgs)`; open the store, build the attributor and call
//! [`run`] / [`run_compliance`] with the `[cases]` and `[bar]` sections
//! ([`botwatch_cases::CasesConfig`]) and `SystemClock`.

use anyhow::{Context, Result, bail};
use botwatch_cases::compliance::{OrgCompliance, Subject, Verdict, org_report, subscriber_status};
use botwatch_cases::{Attributor, CaseEngine, CaseQuery, CaseStore, CasesConfig};
use botwatch_model::{Case, CaseState, Clock, CloseReason};
use botwatch_store::any::AnyStore;
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;

#[derive(Subcommand, Debug, Clone)]
pub enum CasesCmd {
    /// List cases: oldest first, or in the desk's order (--order desk)
    List {
        /// Only this state (detected, notified, acknowledged, escalated, walled_garden, closed)
        #[arg(long)]
        state: Option<String>,
        /// Only this organisation id
        #[arg(long)]
        org: Option<String>,
        /// Only open cases
        #[arg(long)]
        open: bool,
        /// Only cases whose threat (family or type) contains this
        #[arg(long)]
        threat: Option<String>,
        /// Only cases of the constituency's organisations
        #[arg(long)]
        constituency: bool,
        /// id: oldest first; desk: own constituency first, most escalated, newest evidence
        #[arg(long, value_enum, default_value = "id")]
        order: Order,
        /// At most this many
        #[arg(long)]
        limit: Option<u64>,
        /// JSON lines instead of a table
        #[arg(long)]
        json: bool,
    },
    /// One case with its recent evidence and history
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Record that the owner is working on it (restarts the escalation clock)
    Ack {
        id: i64,
        /// Who acknowledges (recorded in the history)
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Notify now: a detected case's first notice without the delay, or a reminder for a
    /// notified one (within the policy's notices per episode)
    Notify {
        id: i64,
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Raise a notified or acknowledged case one escalation level (the walled garden at its level)
    Escalate {
        id: i64,
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Close a case
    Close {
        id: i64,
        #[arg(long, value_enum)]
        reason: CloseArg,
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Attach new stored events to cases, then apply due transitions and queue notices
    Update {
        /// Events per transaction
        #[arg(long, default_value_t = 10_000)]
        batch: u64,
        #[arg(long)]
        json: bool,
    },
    /// Whether a subscriber (id) or an address meets the minimum security bar
    Status {
        /// Subscriber id or IP address
        who: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum CloseArg {
    Remediated,
    Dismissed,
    Silent,
}

impl From<CloseArg> for CloseReason {
    fn from(c: CloseArg) -> Self {
        match c {
            CloseArg::Remediated => CloseReason::Remediated,
            CloseArg::Dismissed => CloseReason::Dismissed,
            CloseArg::Silent => CloseReason::Silent,
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct ComplianceArgs {
    /// JSON lines (one per organisation) instead of a table
    #[arg(long)]
    pub json: bool,
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn json_line(out: &mut dyn Write, v: &impl serde::Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

/// `cases list --order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Order {
    Id,
    Desk,
}

impl CasesCmd {
    /// Whether the command only reads the store (and can run on a read-only one).
    pub fn only_reads(&self) -> bool {
        matches!(self, CasesCmd::List { .. } | CasesCmd::Show { .. } | CasesCmd::Status { .. })
    }
}

fn case_row(out: &mut dyn Write, c: &Case) -> Result<()> {
    writeln!(
        out,
        "{:>6}  {:<13} {:>2}  {:<12} {:<18} {:<40} {:>6} {:>3}/{:<3}  {}",
        c.id,
        c.state.as_str(),
        c.level,
        opt(&c.org),
        opt(&c.ip),
        c.key,
        c.evidence,
        c.notices_sent,
        c.notices_queued,
        c.last_seen
    )?;
    Ok(())
}

pub fn run(
    cmd: &CasesCmd,
    store: &mut AnyStore,
    attributor: &dyn Attributor,
    clock: &dyn Clock,
    cfg: &CasesConfig,
    out: &mut dyn Write,
) -> Result<()> {
    let engine = CaseEngine::new(cfg.cases.clone()).context("invalid [cases] configuration")?;
    match cmd {
        CasesCmd::List { state, org, open, threat, constituency, order, limit, json } => {
            let state = match state {
                Some(s) => {
                    Some(CaseState::from_name(s).with_context(|| format!("unknown case state {s:?}"))?)
                }
                None => None,
            };
            let q = CaseQuery {
                state,
                org: org.clone(),
                open_only: *open,
                limit: *limit,
                threat: threat.clone(),
                constituency_only: *constituency,
                order: match order {
                    Order::Id => botwatch_store::cases::CaseOrder::Id,
                    Order::Desk => botwatch_store::cases::CaseOrder::Desk,
                },
                ..Default::default()
            };
            let cases = store.cases(&q)?;
            if *json {
                for c in &cases {
                    json_line(out, c)?;
                }
            } else {
                writeln!(
                    out,
                    "{:>6}  {:<13} {:>2}  {:<12} {:<18} {:<40} {:>6} {:>7}  last seen",
                    "id", "state", "lv", "org", "ip", "key", "events", "sent/q"
                )?;
                for c in &cases {
                    case_row(out, c)?;
                }
            }
        }
        CasesCmd::Show { id, json } => {
            let Some(rec) = store.case(*id)? else { bail!("no case {id}") };
            let history = store.case_history(*id)?;
            if *json {
                json_line(
                    out,
                    &serde_json::json!({"case": rec.case, "recent": rec.recent, "next_check": rec.next_check, "history": history}),
                )?;
            } else {
                let c = &rec.case;
                writeln!(out, "case {}  {}  ({} level {})", c.id, c.key, c.state.as_str(), c.level)?;
                writeln!(out, "org {}  subscriber {}  ip {}", opt(&c.org), opt(&c.subscriber), opt(&c.ip))?;
                writeln!(
                    out,
                    "first seen {}  last seen {}  evidence {}",
                    c.first_seen, c.last_seen, c.evidence
                )?;
                writeln!(
                    out,
                    "notices: {} sent (accepted by a transport), {} queued (not sent yet), {} in all  first queued {}  first sent {}  re-infections {}",
                    c.notices_sent,
                    c.notices_queued,
                    c.notices,
                    opt(&c.first_notified_at),
                    match c.first_sent_at {
                        Some(t) => t.to_string(),
                        None if c.notices > 0 => "not sent yet".to_string(),
                        None => "-".to_string(),
                    },
                    c.reinfections
                )?;
                if let Some(r) = c.close_reason {
                    writeln!(out, "closed {} ({})", opt(&c.closed_at), r.as_str())?;
                }
                writeln!(out, "next check {}", opt(&rec.next_check))?;
                writeln!(out, "\nrecent evidence:")?;
                for e in &rec.recent {
                    writeln!(
                        out,
                        "  {}  {:<32} {}:{}  {}  {}  → {}",
                        e.time,
                        e.feed,
                        e.ip,
                        opt(&e.port),
                        e.classification_type,
                        opt(&e.malware),
                        opt(&e.destination)
                    )?;
                }
                writeln!(out, "\nhistory:")?;
                for h in &history {
                    writeln!(
                        out,
                        "  {}  {:<10} {:<14} {} → {} (level {}) {}",
                        h.at,
                        h.actor,
                        h.action,
                        h.from.map(|s| s.as_str()).unwrap_or("-"),
                        h.to.as_str(),
                        h.level,
                        h.detail
                    )?;
                }
            }
        }
        CasesCmd::Ack { id, by } => {
            let c = engine.ack(store, *id, by, clock)?;
            writeln!(out, "case {} {}", c.id, c.state.as_str())?;
        }
        CasesCmd::Notify { id, by } => {
            let c = engine.notify_now(store, attributor, *id, by, clock)?;
            writeln!(out, "case {} {}: notice {} queued", c.id, c.state.as_str(), c.notices)?;
        }
        CasesCmd::Escalate { id, by } => {
            let c = engine.escalate(store, attributor, *id, by, clock)?;
            writeln!(out, "case {} {} (level {})", c.id, c.state.as_str(), c.level)?;
        }
        CasesCmd::Close { id, reason, by } => {
            let c = engine.close(store, *id, (*reason).into(), by, clock)?;
            writeln!(out, "case {} closed ({})", c.id, c.close_reason.map(|r| r.as_str()).unwrap_or("-"))?;
        }
        CasesCmd::Update { batch, json } => {
            // Progress with an ETA (hidden with --json and when stderr is not a terminal):
            // a million events take minutes.
            let bar = if *json { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(0) };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {human_pos}/{human_len} events {per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let s = engine.update_with_progress(store, attributor, clock, *batch, &mut |p| {
                bar.set_length(p.total);
                bar.set_position(p.done);
                if p.done >= p.total {
                    bar.set_message("due transitions and re-notices");
                }
            })?;
            bar.finish_and_clear();
            if *json {
                json_line(out, &s)?;
            } else {
                let p = &s.process;
                writeln!(
                    out,
                    "{} events: {} cases opened, {} re-opened, {} sightings attached, {} exposures, {} ignored, {} stale, {} late",
                    p.events, p.opened, p.reopened, p.attached, p.exposures, p.ignored, p.stale, p.late
                )?;
                writeln!(
                    out,
                    "{} transitions, {} notices queued, {} cases closed as silent",
                    p.transitions + s.tick.transitions,
                    p.notices + s.tick.notices,
                    s.tick.closed
                )?;
            }
        }
        CasesCmd::Status { who, json } => {
            let st = subscriber_status(store, &Subject::parse(who), &cfg.bar, clock.now())?;
            if *json {
                json_line(out, &st)?;
            } else {
                writeln!(out, "{who}: {}", if st.meets_bar { "meets the bar" } else { "below the bar" })?;
                for r in &st.reasons {
                    writeln!(out, "  - {r}")?;
                }
            }
        }
    }
    Ok(())
}

fn fmt_f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn compliance_row(out: &mut dyn Write, o: &OrgCompliance) -> Result<()> {
    writeln!(
        out,
        "{:<16} {:>6} {:>5} {:>8} {:>6} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}  {}",
        o.org.as_deref().unwrap_or("(none)"),
        o.cases,
        o.open_cases,
        o.notified_cases,
        o.queued_cases,
        fmt_f(o.hours_to_first_notice.median),
        fmt_f(o.hours_to_first_notice.p90),
        fmt_f(o.days_to_close.median),
        fmt_f(o.share_notified_within.map(|x| x * 100.0)),
        fmt_f(o.reinfection_rate.map(|x| x * 100.0)),
        fmt_f(o.infections_per_1000),
        match o.verdict {
            Verdict::Pass => "pass".to_string(),
            Verdict::Fail => format!("FAIL: {}", o.reasons.join("; ")),
            Verdict::NotMeasured => format!("NOT MEASURED: {}", o.unmeasured.join("; ")),
            Verdict::NoBar => "no bar configured ([bar] in the config)".to_string(),
        }
    )?;
    Ok(())
}

pub fn run_compliance(
    args: &ComplianceArgs,
    store: &AnyStore,
    attributor: &dyn Attributor,
    clock: &dyn Clock,
    cfg: &CasesConfig,
    out: &mut dyn Write,
) -> Result<()> {
    let report = org_report(store, attributor, &cfg.bar, clock.now())?;
    if args.json {
        for o in &report {
            json_line(out, o)?;
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:>6} {:>5} {:>8} {:>6} {:>9} {:>9} {:>9} {:>7} {:>7} {:>8}  bar",
        "org",
        "cases",
        "open",
        "notified",
        "queued",
        "h→notice",
        "p90 h",
        "d→close",
        "%≤Nd",
        "%reinf",
        "per 1k"
    )?;
    for o in &report {
        compliance_row(out, o)?;
    }
    writeln!(
        out,
        "notified = a transport accepted a notice (SMTP 250, webhook 2xx); queued = notices waiting in the outbox (`botwatch notify run` sends them)"
    )?;
    if cfg.bar.is_empty() {
        writeln!(
            out,
            "No [bar] thresholds are configured: no organisation is judged (see botwatch.example.toml)."
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::{ManualClock, Timestamp};
    use botwatch_store::StoreConfig;

    #[test]
    fn commands_run_on_an_empty_store() {
        let mut s = AnyStore::Sqlite(
            botwatch_store::sqlite::SqliteStore::open_in_memory(StoreConfig::default()).unwrap(),
        );
        let clock = ManualClock::new(Timestamp::from_secs(1_700_000_000));
        let cfg = CasesConfig::default();
        let attr = botwatch_cases::NoAttribution;
        let mut out = Vec::new();
        run(&CasesCmd::Update { batch: 100, json: true }, &mut s, &attr, &clock, &cfg, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["process"]["events"], 0);
        out.clear();
        let list = CasesCmd::List {
            state: None,
            org: None,
            open: false,
            threat: None,
            constituency: false,
            order: Order::Id,
            limit: None,
            json: false,
        };
        run(&list, &mut s, &attr, &clock, &cfg, &mut out).unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap().lines().count(), 1, "header only");
        assert!(run(&CasesCmd::Show { id: 1, json: false }, &mut s, &attr, &clock, &cfg, &mut out).is_err());
        let status = CasesCmd::Status { who: "192.0.2.1".into(), json: false };
        out.clear();
        run(&status, &mut s, &attr, &clock, &cfg, &mut out).unwrap();
        assert!(String::from_utf8(out.clone()).unwrap().contains("meets the bar"));
        out.clear();
        run_compliance(&ComplianceArgs { json: true }, &s, &attr, &clock, &cfg, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
