//! blocklist.de: IPs reported by fail2ban-style sensors for attacking a service, one list
//! per service (`ssh.txt`, `mail.txt`, `apache.txt`, …), one IP per line.
//!
//! Lists are regenerated every few minutes from the last 48 hours of reports:
//! <https://www.blocklist.de/en/export.html>. Free to use; the service asks for no more
//! than one download per list every 30 minutes.
//!
//! The files carry no header, so the list — and with it the classification — comes from
//! the file name only: `<list>.txt`, optionally prefixed `blocklistde_` / `blocklist.de_`.
//! A bare `ssh.txt` is claimed only if its lines are IP addresses.

use crate::generic::shared::{base_name, head_lines, set_ip_or_network, spec};
use crate::registry::Provider;
use crate::{FeedSpec, ParseContext, Parser, util};
use botwatch_model::{ClassificationType as T, Side, Sink, Value, parse_ip};
use bytes::Bytes;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "blocklistde", feeds, detect };

const DOC: &str = "https://www.blocklist.de/en/export.html";

/// (list, classification, protocol.application, what the list holds).
const LISTS: &[(&str, T, Option<&str>, &str)] = &[
    ("all", T::Blocklist, None, "IP reported as having run attacks in the last 48 hours"),
    ("ssh", T::BruteForce, Some("ssh"), "IP reported as having run attacks on the service SSH"),
    ("mail", T::Spam, Some("smtp"), "IP reported as having run attacks on the service Mail, Postfix"),
    (
        "apache",
        T::IdsAlert,
        Some("http"),
        "IP reported as having run attacks on the service Apache, Apache-DDoS, RFI-Attacks",
    ),
    (
        "imap",
        T::BruteForce,
        Some("imap"),
        "IP reported as having run attacks on the service IMAP, SASL, POP3",
    ),
    ("ftp", T::BruteForce, Some("ftp"), "IP reported as having run attacks on the service FTP"),
    (
        "sip",
        T::BruteForce,
        Some("sip"),
        "IP reported as having run attacks on the service SIP, VOIP, Asterisk",
    ),
    // RFI attacks, registration bots, IRC bots and forum/wiki comment spam: spam dominates.
    ("bots", T::Spam, None, "IP reported as having spammed on IRC, open forums, wikis or registration forms"),
    ("strongips", T::Blocklist, None, "IP reported as having run attacks in the last 2 months"),
    ("ircbot", T::InfectedSystem, Some("irc"), "IP reported as an IRC bot"),
    (
        "bruteforcelogin",
        T::BruteForce,
        Some("http"),
        "IP reported as having run brute-force logins on Joomla, WordPress and other web logins",
    ),
];

fn feeds() -> Vec<FeedSpec> {
    LISTS
        .iter()
        .map(|&(list, ty, app, desc)| {
            spec(
                &format!("blocklistde_{list}"),
                &format!("blocklist.de {list}"),
                "blocklist.de",
                80.0,
                DOC,
                &format!("{desc}; one IP per line"),
                Arc::new(List { ty, app, desc }),
            )
        })
        .collect()
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let n = base_name(name)?;
    let stem = n.strip_suffix(".txt")?;
    let (list, prefixed) = match ["blocklistde_", "blocklist.de_", "blocklist_de_", "blocklistde-"]
        .iter()
        .find_map(|p| stem.strip_prefix(p))
    {
        Some(l) => (l, true),
        None => (stem, false),
    };
    LISTS.iter().find(|l| l.0 == list)?;
    let all_ips = head_lines(head).map(str::trim).filter(|l| !l.is_empty()).all(|l| parse_ip(l).is_some());
    (prefixed || all_ips).then(|| format!("blocklistde_{list}"))
}

struct List {
    ty: T,
    app: Option<&'static str>,
    desc: &'static str,
}

impl Parser for List {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        for line in util::lines(input) {
            let text = line.text();
            if util::is_comment(&text, &["#"]) {
                continue;
            }
            let mut e = util::event(ctx, self.ty, &line);
            if let Err(m) = set_ip_or_network(&mut e, Side::Source, &text) {
                util::reject(sink, line.number, line.raw.clone(), m);
                continue;
            }
            e.protocol_application = self.app.map(Into::into);
            e.set_attr("event_description.text", Value::Str(self.desc.into()));
            sink.event(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::Collected;

    fn run(id: &str, data: &'static [u8]) -> Collected {
        crate::util::parse_feed(&super::PROVIDER, id, data)
    }

    #[test]
    fn detection_needs_the_list_name() {
        assert_eq!(detect(Some("ssh.txt"), b"192.0.2.1\n").as_deref(), Some("blocklistde_ssh"));
        assert_eq!(detect(Some("dl/blocklistde_all.txt.gz"), b"").as_deref(), Some("blocklistde_all"));
        assert_eq!(detect(Some("ssh.txt"), b"some notes\n"), None);
        assert_eq!(detect(Some("foo.txt"), b"192.0.2.1\n"), None);
        assert_eq!(detect(None, b"192.0.2.1\n"), None);
    }

    #[test]
    fn lines_and_rejects() {
        let out = run("blocklistde_ssh", b"192.0.2.1\n\n2001:db8::1\n192.0.2.300\n");
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[0].classification_type, T::BruteForce);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].line, 4);
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert!(run("blocklistde_all", b"").events.is_empty());
        let out = run("blocklistde_all", b"\xff\xfe\x00\n192.0.");
        assert_eq!((out.events.len(), out.rejects.len()), (0, 2));
    }
}
