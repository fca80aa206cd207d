//! Query filters as SQL both backends run: `?` marks and neutral arguments; the
//! PostgreSQL backend numbers the marks. The few spellings that differ are asked of
//! [`Dialect`].

use crate::{EventQuery, ip_key, net_keys};
use botwatch_model::ClassificationType;

/// A query argument, converted by each backend to its own type.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A classification type as stored, from any of its accepted names. This and the two below
/// are what a filter compares against, in the events' WHERE clause and in the rollup alike.
pub(crate) fn norm_type(t: &str) -> String {
    ClassificationType::from_name(t).map(|c| c.as_str().to_string()).unwrap_or_else(|| t.to_string())
}

/// A malware family as stored (canonical name).
pub(crate) fn norm_family(f: &str) -> String {
    botwatch_model::family::normalise(f).to_string()
}

/// A country code as stored (upper case).
pub(crate) fn norm_cc(cc: &str) -> String {
    cc.to_ascii_uppercase()
}

/// WHERE clause for events (`events = true`) or observations.
pub(crate) fn where_clause(q: &EventQuery, events: bool, dialect: Dialect) -> (String, Vec<Arg>) {
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Arg> = Vec::new();
    let p = if events { "e." } else { "" };
    let _ = p;
    let (time_col, family_col) = if events {
        ("COALESCE(e.time_source, e.time_observation)", "e.family")
    } else {
        ("last_seen", "family")
    };
    // Events have no address index: the observations' index narrows them first.
    let via_obs = if events { "e.observation_id IN (SELECT id FROM observations WHERE ip " } else { "" };
    if let Some(ip) = q.ip {
        if events {
            conds.push(format!("{via_obs}= ?) AND e.ip = ?"));
            args.push(Arg::Blob(ip_key(ip).to_vec()));
        } else {
            conds.push("ip = ?".into());
        }
        args.push(Arg::Blob(ip_key(ip).to_vec()));
    }
    if let Some(n) = q.cidr {
        let (lo, hi) = net_keys(n);
        if events {
            conds.push(format!("{via_obs}BETWEEN ? AND ?) AND e.ip BETWEEN ? AND ?"));
            args.push(Arg::Blob(lo.to_vec()));
            args.push(Arg::Blob(hi.to_vec()));
        } else {
            conds.push("ip BETWEEN ? AND ?".into());
        }
        args.push(Arg::Blob(lo.to_vec()));
        args.push(Arg::Blob(hi.to_vec()));
    }
    if let Some(a) = q.asn {
        conds.push(format!("{p}asn = ?"));
        args.push(Arg::Int(a as i64));
    }
    if let Some(cc) = &q.cc {
        conds.push(format!("{p}cc = ?"));
        args.push(Arg::Text(norm_cc(cc)));
    }
    if let Some(f) = &q.family {
        conds.push(format!("{family_col} = ?"));
        args.push(Arg::Text(norm_family(f)));
    }
    if let Some(f) = &q.feed {
        if events {
            conds.push(format!("{p}feed = ?"));
            args.push(Arg::Text(f.clone()));
        } else {
            conds.push(match dialect {
                Dialect::Sqlite => "json_extract(sources, '$.\"' || ? || '\"') IS NOT NULL".to_string(),
                Dialect::Postgres => "jsonb_exists(sources::jsonb, ?)".to_string(),
            });
            args.push(Arg::Text(f.clone()));
        }
    }
    if let Some(t) = &q.classification_type {
        conds.push(format!("{p}type = ?"));
        args.push(Arg::Text(norm_type(t)));
    }
    if let Some(s) = q.since {
        conds.push(format!("{time_col} >= ?"));
        args.push(Arg::Int(s.micros()));
    }
    if let Some(u) = q.until {
        conds.push(format!("{time_col} < ?"));
        args.push(Arg::Int(u.micros()));
    }
    if let Some(a) = q.after_id {
        conds.push(format!("{p}id > ?"));
        args.push(Arg::Int(a));
    }
    if conds.is_empty() { (String::new(), args) } else { (format!("WHERE {}", conds.join(" AND ")), args) }
}
