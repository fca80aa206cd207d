//! DataPlane.org reports: addresses seen doing one thing (SSH password guessing, SIP
//! registration, DNS recursion probes, …), one report per behaviour, as
//! `ASN | ASname | ipaddr | lastseen | category` with `#` comments.
//!
//! Updated hourly; free for non-commercial use only, no redistribution without permission
//! (see each file's header). Documentation: <https://dataplane.org/> and the file headers.
//!
//! The AS name may itself contain `|`, so fields are taken from both ends of the line.
//! Each line names its category, which decides the classification (after IntelMQ's
//! DataPlane parser); the feed id is `dataplane_<category>`.

use crate::generic::shared::{base_name, contains_ci, head_lines, spec};
use crate::registry::Provider;
use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{ClassificationType as T, Sink, Value, Warning, WarningKind};
use bytes::Bytes;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "dataplane", feeds, detect };

/// (category, classification, protocol.application, description).
const LISTS: &[(&str, T, Option<&str>, &str)] = &[
    (
        "dnsrd",
        T::Scanner,
        Some("dns"),
        "Address has been seen identifying DNS servers with recursion desired queries",
    ),
    ("dnsrdany", T::Scanner, Some("dns"), "Address has been seen sending recursive DNS ANY queries"),
    ("dnsversion", T::Scanner, Some("dns"), "Address has been seen sending DNS CHAOS version.bind queries"),
    ("proto41", T::Other, None, "Address has been seen as an open IPv4 protocol 41 (6in4) relay"),
    (
        "sipinvitation",
        T::BruteForce,
        Some("sip"),
        "Address has been seen initiating a SIP INVITE operation to a remote host",
    ),
    (
        "sipquery",
        T::BruteForce,
        Some("sip"),
        "Address has been seen initiating a SIP OPTIONS query to a remote host",
    ),
    (
        "sipregistration",
        T::BruteForce,
        Some("sip"),
        "Address has been seen initiating a SIP REGISTER operation to a remote host",
    ),
    ("smtpdata", T::Spam, Some("smtp"), "Address has been seen sending SMTP DATA to a remote host"),
    (
        "smtpgreet",
        T::Scanner,
        Some("smtp"),
        "Address has been seen connecting to SMTP servers without sending a greeting",
    ),
    (
        "sshclient",
        T::Scanner,
        Some("ssh"),
        "Address has been seen initiating an SSH connection to a remote host",
    ),
    (
        "sshpwauth",
        T::BruteForce,
        Some("ssh"),
        "Address has been seen attempting to remotely login to a host using SSH password authentication",
    ),
    (
        "telnetlogin",
        T::BruteForce,
        Some("telnet"),
        "Address has been seen attempting to log in to a telnet server",
    ),
    ("vncrfb", T::Scanner, Some("vnc"), "Address has been seen initiating a VNC remote frame buffer session"),
];

fn feeds() -> Vec<FeedSpec> {
    LISTS
        .iter()
        .map(|&(cat, _, _, desc)| {
            spec(
                &format!("dataplane_{cat}"),
                &format!("DataPlane {cat}"),
                "DataPlane.org",
                80.0,
                "https://dataplane.org/",
                &format!("{desc}; ASN | ASname | ipaddr | lastseen | category"),
                Arc::new(Report),
            )
        })
        .collect()
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    if !contains_ci(head, "DataPlane.org") {
        return None;
    }
    // The category column of the first entry, else the report name in the header or file name.
    let from_line = head_lines(head)
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.rsplit('|').next())
        .map(|c| c.trim().to_ascii_lowercase());
    let from_header = head_lines(head).take(5).find_map(|l| {
        let w = l.trim_start_matches('#').trim().to_ascii_lowercase();
        LISTS.iter().any(|x| x.0 == w).then_some(w)
    });
    let from_name =
        base_name(name).and_then(|n| LISTS.iter().find(|x| n.starts_with(x.0)).map(|x| x.0.to_string()));
    [from_line, from_header, from_name]
        .into_iter()
        .flatten()
        .find(|c| LISTS.iter().any(|x| x.0 == c))
        .map(|c| format!("dataplane_{c}"))
}

struct Report;

impl Parser for Report {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut unknown: Vec<String> = Vec::new();
        for line in util::lines(input) {
            let text = line.text();
            if util::is_comment(&text, &["#"]) {
                continue;
            }
            let f: Vec<&str> = text.split('|').map(str::trim).collect();
            let n = f.len();
            if n < 5 {
                util::reject(
                    sink,
                    line.number,
                    line.raw.clone(),
                    format!("expected 5 '|'-separated fields, found {n}"),
                );
                continue;
            }
            let (asn, category, seen, ip) = (f[0], f[n - 1].to_ascii_lowercase(), f[n - 2], f[n - 3]);
            let as_name = f[1..n - 3].join(" | ");
            let known = LISTS.iter().find(|x| x.0 == category);
            let ty = known.map(|x| x.1).unwrap_or(T::Undetermined);
            if known.is_none() && !unknown.contains(&category) {
                sink.warning(Warning {
                    kind: WarningKind::SchemaDrift,
                    line: Some(line.number),
                    message: format!("unknown DataPlane category {category:?}; events are 'undetermined'"),
                });
                unknown.push(category.clone());
            }
            let mut e = util::event(ctx, ty, &line);
            if let Err(m) = util::set(&mut e, ctx, "source.ip", ip) {
                util::reject(sink, line.number, line.raw.clone(), m);
                continue;
            }
            if asn != "NA" {
                util::set_opt(&mut e, ctx, "source.asn", asn);
            }
            if as_name != "NA" {
                util::set_opt(&mut e, ctx, "source.as_name", &as_name);
            }
            util::set_opt(&mut e, ctx, "time.source", seen);
            e.classification_identifier = Some(category.as_str().into());
            if let Some(&(_, _, app, desc)) = known {
                e.protocol_application = app.map(Into::into);
                e.set_attr("event_description.text", Value::Str(desc.into()));
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
        let spec = feeds().into_iter().find(|f| f.id == "dataplane_sshpwauth").unwrap();
        crate::util::parse_with(&spec, data)
    }

    #[test]
    fn pipes_in_as_names_and_categories() {
        let out = run(b"1  |  TEST-AS company | With | pipe   |  1.2.3.4  |  2024-04-02 12:00:00  |  sshpwauth\nNA | NA | 2001:db8::1 | 2024-04-02 12:00:00 | newlist\n");
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[0].source.as_name.as_deref(), Some("TEST-AS company | With | pipe"));
        assert_eq!(out.events[0].classification_type, T::BruteForce);
        assert_eq!(out.events[1].source.asn, None);
        assert_eq!(out.events[1].classification_type, T::Undetermined);
        assert_eq!(out.warnings.len(), 1);
    }

    #[test]
    fn detection() {
        assert_eq!(detect(None, b"# DataPlane.org\n# sshpwauth\n").as_deref(), Some("dataplane_sshpwauth"));
        assert_eq!(
            detect(None, b"# DataPlane.org\n1 | X | 1.2.3.4 | 2024-01-01 00:00:00 | sipquery\n").as_deref(),
            Some("dataplane_sipquery")
        );
        assert_eq!(detect(Some("sshpwauth.txt"), b"1 | X | 1.2.3.4 | t | sshpwauth\n"), None);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert!(run(b"").events.is_empty());
        let out = run(b"\xff\x00garbage\n1 | X | 999.1.1.1 | t | sshpwauth\n4134 | CHINANET | 117.21");
        assert_eq!((out.events.len(), out.rejects.len()), (0, 3));
    }
}
