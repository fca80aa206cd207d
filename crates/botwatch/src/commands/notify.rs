//! `botwatch notify` (deliver and list notices) and `botwatch reports daily`.

#[allow(unused_imports)]
use super::*;
use crate::cli::*;
use anyhow::{Context, Result, bail};
use botwatch::config::Config;
use botwatch_model::{Clock, SystemClock};
use std::io::Write;

pub(crate) fn notify(cfg: &Config, cmd: NotifyCmd, out: &mut dyn Write) -> Result<()> {
    use botwatch_store::outbox::{NoticeStatus, OutboxStore};
    match cmd {
        NotifyCmd::Run { dry_run, db, json } => {
            let mut store = open_existing(cfg, &db)?;
            let sum = botwatch::deliver_notices(cfg, &mut store, &SystemClock, dry_run)?;
            if json {
                writeln!(out, "{}", serde_json::to_string(&sum)?)?;
            } else {
                for p in &sum.previews {
                    writeln!(
                        out,
                        "--- notice {} → {} ({:?}), Message-ID <{}>",
                        p.id, p.recipient, p.channel, p.message_id
                    )?;
                    writeln!(out, "Subject: {}\n\n{}", p.rendered.subject, p.rendered.text)?;
                }
                writeln!(
                    out,
                    "{} due · {} sent · {} deferred (rate limit) · {} deferred (quiet hours) · {} to retry · {} failed · {} cancelled (case closed) · {} taken over by another runner · {} left queued (no transport){}",
                    sum.due,
                    sum.sent,
                    sum.deferred_rate_limit,
                    sum.deferred_quiet_hours,
                    sum.retried,
                    sum.failed,
                    sum.cancelled,
                    sum.lost_claim,
                    sum.no_transport,
                    if dry_run { " (dry run: nothing sent)" } else { "" }
                )?;
            }
            if !dry_run && !sum.missing_transports.is_empty() {
                let what: Vec<&str> = sum
                    .missing_transports
                    .iter()
                    .map(|c| match c {
                        botwatch_store::outbox::Channel::Email => {
                            "e-mail notices need [notify.smtp] url (or host) in the config"
                        }
                        botwatch_store::outbox::Channel::Webhook => "webhook notices need [notify.webhook]",
                    })
                    .collect();
                bail!("{} notice(s) left queued, not sent: {}", sum.no_transport, what.join("; "));
            }
        }
        NotifyCmd::List { status, limit, db, json } => {
            let store = open_read(cfg, &db)?;
            let status = match status {
                Some(s) => {
                    Some(NoticeStatus::from_name(&s).with_context(|| format!("unknown status {s:?}"))?)
                }
                None => None,
            };
            for n in store.notices(status, limit)? {
                if json {
                    writeln!(out, "{}", serde_json::to_string(&n)?)?;
                } else {
                    writeln!(
                        out,
                        "{:>5}  {:<7} {:<8} {:<16} {:<40} case {:>5}  {}",
                        n.id,
                        n.status.as_str(),
                        n.notice.channel.as_str(),
                        n.notice.kind,
                        n.notice.recipient,
                        n.notice.case_id.map(|c| c.to_string()).unwrap_or_default(),
                        n.notice.key
                    )?;
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn daily_reports(
    cfg: &Config,
    db: &DbArg,
    day: Option<&str>,
    dir: &std::path::Path,
    out: &mut dyn Write,
) -> Result<()> {
    let store = open_read(cfg, db)?;
    let now = SystemClock.now();
    let day = match day {
        Some(d) => d.to_string(),
        None => botwatch::isp::yesterday(now),
    };
    for w in botwatch::isp::write_daily_reports(cfg, &store, &day, dir, now)? {
        writeln!(out, "{}: {} rows → {}.{{csv,json,xarf.jsonl}}", w.org, w.rows, w.base.display())?;
    }
    Ok(())
}
