//! Team Cymru CAP / infected-hosts feed for CSIRTs: `report|ip|asn|timestamp|comments|asn_name`,
//! one line per observation, `#` comments.
//!
//! Delivered daily to national CSIRTs and network owners under agreement with Team Cymru
//! (not for redistribution); the format is documented only in the file header. The program:
//! <https://team-cymru.com/blog/2020/08/26/csirt-assistance-program-hits-new-high-with-129-csirt-teams/>.
//!
//! The report type decides the classification; the comments column is free text whose
//! shape depends on it (`srcport 1337 mwtype Conficker destaddr 172.16.0.22` for bots, the
//! protocol for brute force, the URL for phishing). The newer CAP format writes
//! `key: value; key: value` comments and `AS name, CC`; both are read. The mapping follows
//! IntelMQ's Cymru parsers; open resolvers are `ddos-amplifier` as in RSIT.

use crate::generic::shared::{base_name, contains_ci, set_url, spec};
use crate::registry::Provider;
use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{ClassificationType as T, Event, Side, Sink, Value, Warning, WarningKind};
use bytes::Bytes;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "cymru", feeds, detect };

fn feeds() -> Vec<FeedSpec> {
    vec![spec(
        "cymru_infected",
        "CAP infected hosts",
        "Team Cymru",
        90.0,
        "https://team-cymru.com/blog/2020/08/26/csirt-assistance-program-hits-new-high-with-129-csirt-teams/",
        "Bots, brute force, phishing, spam, open resolvers and proxies in a CSIRT's networks, pipe separated",
        Arc::new(Infected),
    )]
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let marked = contains_ci(head, "# Format: report|ip|asn|timestamp")
        || contains_ci(head, "# Format: category|ip|asn|timestamp");
    let named = base_name(name).is_some_and(|n| n.contains("cymru")) && contains_ci(head, "|");
    (marked || named).then(|| "cymru_infected".to_string())
}

/// Classification, identifier, application protocol for a report type; `None` if unknown.
fn meaning(report: &str) -> Option<(T, Option<&'static str>, Option<&'static str>)> {
    Some(match report {
        "bots" | "bot" => (T::InfectedSystem, None, None),
        "bruteforce" => (T::BruteForce, None, None),
        "controller" => (T::C2Server, None, None),
        "darknet" => (T::Scanner, Some("darknet"), None),
        "honeypot" | "scanners" => (T::Scanner, None, None),
        "phishing" => (T::Phishing, Some("phishing"), None),
        "proxy" => (T::PotentiallyUnwantedAccessible, Some("openproxy"), None),
        "openresolvers" => (T::DdosAmplifier, Some("dns-open-resolver"), Some("dns")),
        "spam" => (T::Spam, Some("spam"), None),
        "malwareurl" => (T::MalwareDistribution, Some("malwareurl"), None),
        "spreaders" => (T::MalwareDistribution, Some("spreader"), None),
        "defacement" => (T::UnauthorisedInformationModification, Some("defacement"), None),
        "fastflux" | "routers" => (T::SystemCompromise, None, None),
        "ddosreport" => (T::Ddos, None, None),
        // Old single-family reports: the report names the worm or bot.
        "beagle" | "blaster" | "dameware" | "dipnet" | "mydoom" | "nachi" | "phatbot" | "sinit"
        | "slammer" | "toxbot" => (T::InfectedSystem, None, None),
        _ => return None,
    })
}

struct Infected;

impl Parser for Infected {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut unknown: Vec<String> = Vec::new();
        for line in util::lines(input) {
            let text = line.text();
            if util::is_comment(&text, &["#"]) {
                continue;
            }
            // The AS name is last and may itself contain '|'.
            let f: Vec<&str> = text.trim().splitn(6, '|').collect();
            if f.len() < 4 {
                util::reject(
                    sink,
                    line.number,
                    line.raw.clone(),
                    format!("expected 6 '|'-separated fields, found {}", f.len()),
                );
                continue;
            }
            let col = |i: usize| f.get(i).copied().unwrap_or("").trim();
            let report = col(0).to_ascii_lowercase();
            let (ty, ident, app) = match meaning(&report) {
                Some(m) => m,
                None => {
                    if !unknown.contains(&report) {
                        sink.warning(Warning {
                            kind: WarningKind::SchemaDrift,
                            line: Some(line.number),
                            message: format!(
                                "unknown Team Cymru report type {report:?}; events are 'undetermined'"
                            ),
                        });
                        unknown.push(report.clone());
                    }
                    (T::Undetermined, None, None)
                }
            };
            let mut e = util::event(ctx, ty, &line);
            if let Err(m) = util::set(&mut e, ctx, "source.ip", col(1)) {
                util::reject(sink, line.number, line.raw.clone(), m);
                continue;
            }
            if col(2) != "0" {
                util::set_opt(&mut e, ctx, "source.asn", col(2));
            }
            util::set_opt(&mut e, ctx, "time.source", col(3));
            e.classification_identifier = Some(ident.unwrap_or(&report).into());
            e.protocol_application = app.map(Into::into);
            if matches!(
                report.as_str(),
                "beagle"
                    | "blaster"
                    | "dameware"
                    | "dipnet"
                    | "mydoom"
                    | "nachi"
                    | "phatbot"
                    | "sinit"
                    | "slammer"
                    | "toxbot"
            ) {
                let _ = util::set(&mut e, ctx, "malware.name", &report);
            }
            as_name(&mut e, ctx, col(5));
            let comment = col(4);
            if !comment.is_empty() {
                if comment.contains(": ") {
                    new_comment(&mut e, ctx, &report, comment);
                } else {
                    old_comment(&mut e, ctx, &report, comment);
                }
            }
            sink.event(e);
        }
    }
}

/// "AS name" or, in the newer format, "AS name, CC".
fn as_name(e: &mut Event, ctx: &ParseContext<'_>, v: &str) {
    match v.rsplit_once(", ") {
        Some((name, cc)) if cc.len() == 2 && cc.bytes().all(|c| c.is_ascii_alphabetic()) => {
            util::set_opt(e, ctx, "source.as_name", name);
            util::set_opt(e, ctx, "source.geolocation.cc", cc);
        }
        _ => util::set_opt(e, ctx, "source.as_name", v),
    }
}

fn keep(e: &mut Event, key: &str, v: &str) {
    e.set_attr(key, Value::Str(v.into()));
}

/// Free-text comments of the original format.
fn old_comment(e: &mut Event, ctx: &ParseContext<'_>, report: &str, c: &str) {
    match report {
        "bots" | "bot" => {
            // "[srcport N] [mwtype TYPE…] [destaddr IP] [free text]"; the type may contain spaces.
            let mut key: Option<&str> = None;
            let mut val: Vec<&str> = Vec::new();
            let mut rest: Vec<&str> = Vec::new();
            for word in c.split_whitespace() {
                match word {
                    "srcport" | "mwtype" | "destaddr" => {
                        flush(e, ctx, key, &mut val, &mut rest);
                        key = Some(word);
                    }
                    // Single-valued keys end after one word; what follows is description.
                    w if matches!(key, Some("srcport" | "destaddr")) && val.len() == 1 => rest.push(w),
                    w => val.push(w),
                }
            }
            flush(e, ctx, key, &mut val, &mut rest);
            if !rest.is_empty() {
                keep(e, "event_description.text", &rest.join(" "));
            }
        }
        "bruteforce" => {
            e.protocol_application = Some(c.to_ascii_lowercase().into());
            e.classification_identifier = Some(c.to_ascii_lowercase().into());
        }
        "phishing" | "malwareurl" | "spreaders" | "defacement" => {
            let mut words = c.split_whitespace();
            let url = words.next().unwrap_or_default();
            if set_url(e, Side::Source, url).is_err() {
                keep(e, "extra.invalid.source.url", url);
            }
            let rest: Vec<&str> = words.collect();
            if !rest.is_empty() {
                let key = match report {
                    "spreaders" => "malware.hash.md5",
                    "defacement" => "extra.zoneh_id",
                    "malwareurl" => "extra.scan_id",
                    _ => "extra.comment",
                };
                keep(e, key, &rest.join(" "));
            }
        }
        "proxy" => {
            // "HTTP CONNECT (8080)": the port the proxy listens on.
            keep(e, "extra.request", c);
            if let Some(p) = c.rsplit_once('(').and_then(|(_, p)| p.strip_suffix(')')) {
                util::set_opt(e, ctx, "source.port", p);
            }
        }
        "scanners" if c.parse::<u16>().is_ok() => util::set_opt(e, ctx, "destination.port", c),
        "fastflux" => util::set_opt(e, ctx, "source.fqdn", c),
        _ => keep(e, "extra.comment", c),
    }
}

/// Applies one `srcport`/`mwtype`/`destaddr` value of a bots comment.
fn flush<'a>(
    e: &mut Event,
    ctx: &ParseContext<'_>,
    key: Option<&str>,
    val: &mut Vec<&'a str>,
    rest: &mut Vec<&'a str>,
) {
    let v = val.join(" ");
    match key {
        Some("srcport") => util::set_opt(e, ctx, "source.port", &v),
        Some("mwtype") => {
            let _ = util::set(e, ctx, "malware.name", &v);
            // As IntelMQ: the family identifies a bots observation.
            e.classification_identifier = Some(v.to_lowercase().into());
            keep(e, "extra.mwtype", &v);
        }
        Some("destaddr") => util::set_opt(e, ctx, "destination.ip", &v),
        _ => rest.append(val),
    }
    val.clear();
}

/// `key: value; key: value` comments of the newer CAP format.
fn new_comment(e: &mut Event, ctx: &ParseContext<'_>, report: &str, c: &str) {
    let mut ports = Vec::new();
    for part in c.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once(':') else {
            keep(e, "extra.comment", part);
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "family" => {
                let _ = util::set(e, ctx, "malware.name", v);
                e.classification_identifier = Some(v.to_ascii_lowercase().into());
            }
            "dest_addr" => util::set_opt(e, ctx, "destination.ip", v),
            "dest_port" | "ports_scanned" | "honeypot_port" | "darknet_port" => {
                ports.extend(v.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_string))
            }
            "protocol" => match v {
                "6" => e.protocol_transport = Some("tcp".into()),
                "17" => e.protocol_transport = Some("udp".into()),
                other => keep(e, "extra.protocol", other),
            },
            "hostname" => util::set_opt(e, ctx, "source.fqdn", v),
            "proxy_type" if report == "proxy" => match v.split_once('-') {
                Some((app, port)) => {
                    e.protocol_application = Some(app.to_ascii_lowercase().into());
                    util::set_opt(e, ctx, "source.port", port);
                }
                None => keep(e, "extra.proxy_type", v),
            },
            other => keep(e, &crate::generic::shared::extra_key(other), v),
        }
    }
    match ports.as_slice() {
        [] => {}
        [one] => util::set_opt(e, ctx, "destination.port", one),
        many => keep(e, "extra.destination_ports", &many.join(",")),
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
    fn bots_comment_is_taken_apart() {
        let out = run(b"bots|172.16.0.21|0|2017-10-31 10:00:05|srcport 1337 mwtype malwareexample destaddr 172.16.0.22 Some Botnet|AS\n");
        let e = &out.events[0];
        assert_eq!(e.source.port, Some(1337));
        assert_eq!(e.source.asn, None);
        assert_eq!(e.malware_name.as_deref(), Some("malwareexample"));
        assert_eq!(e.destination.ip.unwrap().to_string(), "172.16.0.22");
        assert_eq!(e.attr("event_description.text").unwrap().as_str(), Some("Some Botnet"));
    }

    #[test]
    fn new_format_and_unknown_reports() {
        let out = run(b"bot|192.0.2.1|64496|2020-01-01 00:00:00|family: Mirai; dest_addr: 192.0.2.9; dest_port: 23; protocol: 6|EXAMPLE, AT\nnewthing|192.0.2.2|1|2020-01-01 00:00:00||X\n");
        assert_eq!(out.events.len(), 2);
        let e = &out.events[0];
        assert_eq!(e.malware_name.as_deref(), Some("mirai"));
        assert_eq!(e.destination.port, Some(23));
        assert_eq!(e.source.cc.as_deref(), Some("AT"));
        assert_eq!(e.protocol_transport.as_deref(), Some("tcp"));
        assert_eq!(out.events[1].classification_type, T::Undetermined);
        assert_eq!(out.warnings.len(), 1);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert!(run(b"").events.is_empty());
        let out = run(b"\xff\x00garbage\nbots|999.0.0.1|1|x||y\nbots|172.16");
        assert_eq!((out.events.len(), out.rejects.len()), (0, 3));
    }
}
