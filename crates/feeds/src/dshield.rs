//! DShield (SANS Internet Storm Center) Recommended Block List: the top 20 attacking /24
//! networks of the last three days, tab separated
//! (`start, end, netblock bits, attacks, name, country, email`).
//!
//! Updated several times a day; licensed CC BY-NC-SA 2.5 (see the file header).
//! Documentation: the header of the list itself, <https://feeds.dshield.org/block.txt>.
//!
//! "Attacks" counts the targets that reported scans from the network, so the
//! classification is `scanner` (IntelMQ says `blacklist`; the list says what the network
//! did). The file's `updated:` time becomes `time.source`. The end address is implied by
//! start and prefix length and is not kept.

use crate::generic::shared::{base_name, contains_ci, spec};
use crate::registry::Provider;
use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{ClassificationType, Sink, Timestamp, Value, parse_timestamp};
use bytes::Bytes;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "dshield", feeds, detect };

fn feeds() -> Vec<FeedSpec> {
    vec![spec(
        "dshield_block",
        "Recommended Block List",
        "DShield",
        70.0,
        "https://feeds.dshield.org/block.txt",
        "Top 20 attacking /24 networks of the last three days, tab separated",
        Arc::new(Block),
    )]
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let named = base_name(name).is_some_and(|n| n.contains("dshield") && n.contains("block"));
    let marked = contains_ci(head, "DShield.org Recommended Block List")
        || (contains_ci(head, "dshield") && contains_ci(head, "Start\tEnd\tNetblock"));
    (marked || (named && contains_ci(head, "dshield"))).then(|| "dshield_block".to_string())
}

/// "updated: Tue Dec 15 15:33:38 2015 UTC": the zone comes last, which the common
/// formats do not expect.
fn header_time(v: &str) -> Option<Timestamp> {
    let v = v.trim();
    parse_timestamp(v).or_else(|| {
        let (rest, zone) = v.rsplit_once(' ')?;
        matches!(zone, "UTC" | "GMT").then(|| parse_timestamp(rest)).flatten()
    })
}

struct Block;

impl Parser for Block {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut updated = None;
        for line in util::lines(input) {
            let text = line.text();
            let t = text.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(c) = t.strip_prefix('#') {
                if let Some(v) = c.trim().strip_prefix("updated:") {
                    updated = header_time(v);
                }
                continue;
            }
            let f: Vec<&str> = text.split('\t').map(str::trim).collect();
            if f.first().is_some_and(|s| s.eq_ignore_ascii_case("start")) {
                continue;
            }
            if f.len() < 3 {
                util::reject(
                    sink,
                    line.number,
                    line.raw.clone(),
                    format!("expected at least 3 tab-separated fields, found {}", f.len()),
                );
                continue;
            }
            let mut e = util::event(ctx, ClassificationType::Scanner, &line);
            e.time_source = updated;
            if let Err(m) = util::set(&mut e, ctx, "source.network", &format!("{}/{}", f[0], f[2])) {
                util::reject(sink, line.number, line.raw.clone(), m);
                continue;
            }
            let col = |i: usize| f.get(i).copied().unwrap_or("");
            match col(3).parse::<i64>() {
                Ok(n) => e.set_attr("extra.attacks", Value::Int(n)),
                Err(_) if col(3).is_empty() => {}
                Err(_) => e.set_attr("extra.invalid.attacks", Value::Str(col(3).into())),
            }
            if !col(4).is_empty() {
                e.set_attr("extra.network_name", Value::Str(col(4).into()));
            }
            util::set_opt(&mut e, ctx, "source.geolocation.cc", col(5));
            if !col(6).is_empty() {
                e.set_attr("source.abuse_contact", Value::Str(col(6).into()));
            }
            for (i, v) in f.iter().enumerate().skip(7).filter(|(_, v)| !v.is_empty()) {
                e.set_attr(&format!("extra.column_{}", i + 1), Value::Str((*v).into()));
            }
            sink.event(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::Collected;

    fn run(data: &'static [u8]) -> Collected {
        let spec = feeds().remove(0);
        crate::util::parse_with(&spec, data)
    }

    #[test]
    fn rows_and_header_time() {
        let out = run(b"#    updated: Tue Dec 15 15:33:38 2015 UTC\nStart\tEnd\tNetblock\n43.229.53.0\t43.229.53.255\t24\t788\tJapan Inet\tJP\ta@b\n1.2.3.0\t1.2.3.255\t33\n");
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].time_source.unwrap().to_rfc3339(), "2015-12-15T15:33:38+00:00");
        assert_eq!(out.events[0].source.network.unwrap().to_string(), "43.229.53.0/24");
        assert_eq!(out.rejects.len(), 1);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert!(run(b"").events.is_empty());
        let out = run(b"\xff\x00garbage\n43.229.53.0\t43.2");
        assert_eq!((out.events.len(), out.rejects.len()), (0, 2));
    }
}
