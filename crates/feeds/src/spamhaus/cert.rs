//! The CERT bots feed: `ip, asn, country, lastseen, botname, domain, remote_ip,
//! remote_port, local_port, protocol`, `;` comments, `?` or `-` for "unknown".
//!
//! Most bot names are malware families (infected-system); the rest name what a honeypot or
//! mail server saw the host do. The mapping follows IntelMQ's Spamhaus CERT parser; the bot
//! name itself is kept as `classification.identifier`.

use crate::generic::shared::{Kind, classify, set_url};
use crate::util;
use crate::{ParseContext, Parser};
use botwatch_model::{ClassificationType as T, Event, Side, Sink, Value};
use bytes::Bytes;

/// What a bot name means: classification, application protocol, whether it is a family.
fn meaning(bot: &str, remote_port: &str) -> (T, Option<&'static str>, bool) {
    match bot {
        "openrelay" => (T::VulnerableSystem, Some("smtp"), false),
        "sshauth" => (T::BruteForce, Some("ssh"), false),
        "telnetauth" => (T::BruteForce, Some("telnet"), false),
        "smtpauth" | "authspoofbadehlo" => (T::BruteForce, Some("smtp"), false),
        "pop" => (T::BruteForce, Some("pop3"), false),
        "imap" => (T::BruteForce, Some("imap"), false),
        "iotlogin" | "iotcmd" => (T::BruteForce, None, false),
        "automatedtest" => (T::BruteForce, None, false),
        "iotscan" | "iotuser" if matches!(remote_port, "23" | "2323") => (T::Scanner, Some("telnet"), false),
        "iotscan" | "iotuser" => (T::Scanner, None, false),
        "iotrdp" | "rdp" => (T::Scanner, Some("rdp"), false),
        "iotmicrosoftds" | "smb" => (T::Scanner, Some("smb"), false),
        "wpscanner" | "w_wplogin" => (T::Scanner, Some("http"), false),
        "l_spamlink" | "extortion" => (T::Spam, None, false),
        "proxyget" => (T::Other, None, false),
        "ioturl" => (T::C2Server, None, false),
        // Spamhaus' catch-alls for bots of no known family.
        "auto" | "misc" => (T::InfectedSystem, None, false),
        _ => (T::InfectedSystem, None, true),
    }
}

fn known(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty() && v != "?" && v != "-").then_some(v)
}

pub(super) struct Csv;

impl Parser for Csv {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        for line in util::lines(input) {
            let text = line.text();
            if util::is_comment(&text, &[";"]) {
                continue;
            }
            let f: Vec<&str> = text.split(',').map(str::trim).collect();
            if f.len() < 5 {
                util::reject(
                    sink,
                    line.number,
                    line.raw.clone(),
                    format!("expected at least 5 fields, found {}", f.len()),
                );
                continue;
            }
            let col = |i: usize| f.get(i).copied().unwrap_or("");
            let bot = col(4).to_ascii_lowercase();
            let (ty, app, family) = meaning(&bot, col(7));
            let mut e = util::event(ctx, ty, &line);
            if let Err(m) = util::set(&mut e, ctx, "source.ip", col(0)) {
                util::reject(sink, line.number, line.raw.clone(), m);
                continue;
            }
            util::set_opt(&mut e, ctx, "source.asn", col(1));
            util::set_opt(&mut e, ctx, "source.geolocation.cc", col(2));
            util::set_opt(&mut e, ctx, "time.source", col(3));
            if !bot.is_empty() {
                e.classification_identifier = Some(bot.as_str().into());
            }
            if family {
                let _ = util::set(&mut e, ctx, "malware.name", &bot);
            }
            if let Some(a) = app {
                e.protocol_application = Some(a.into());
            }
            if let Some(ip) = known(col(6)) {
                remote(&mut e, ip, bot == "l_spamlink");
            }
            if let Some(d) = known(col(5)) {
                domain(&mut e, d, &bot);
            }
            util::set_opt(&mut e, ctx, "destination.port", col(7));
            if let Some(lp) = known(col(8)) {
                if bot == "l_spamlink" {
                    spamlink(&mut e, ctx, lp);
                } else {
                    // The bot's own end of the connection.
                    util::set_opt(&mut e, ctx, "source.port", lp);
                }
            }
            util::set_opt(&mut e, ctx, "protocol.transport", col(9));
            // "Additional fields may be added in the future without notice."
            for (i, v) in f.iter().enumerate().skip(10) {
                if let Some(v) = known(v) {
                    e.set_attr(&format!("extra.column_{}", i + 1), Value::Str(v.into()));
                }
            }
            sink.event(e);
        }
    }
}

/// The remote IP column: the C2 the bot talked to, or for spam links the linked URL.
fn remote(e: &mut Event, v: &str, spamlink: bool) {
    match classify(v) {
        Kind::Ip(ip) => e.destination.ip = Some(ip),
        // The link in the spam, not a name of the sending host: no host derived from it.
        Kind::Url if spamlink => e.source.url = Some(v.into()),
        Kind::Url => {
            if set_url(e, Side::Destination, v).is_err() {
                e.set_attr("extra.remote_ip", Value::Str(v.into()));
            }
        }
        _ => e.set_attr("extra.invalid.destination.ip", Value::Str(v.into())),
    }
}

/// The domain column: usually the C2 host name, but also IPs, `ip:port` and URLs.
fn domain(e: &mut Event, v: &str, bot: &str) {
    // Spamhaus said in 2018 that iotscan's domain column is wrong; keep it, do not use it.
    if bot == "iotscan" {
        e.set_attr("extra.domain", Value::Str(v.into()));
        return;
    }
    let kind = classify(v);
    match kind {
        Kind::Fqdn => {
            let _ = e.set_str(
                botwatch_model::Slot::Endpoint(Side::Destination, botwatch_model::EndpointField::Fqdn),
                v,
            );
        }
        Kind::Ip(ip) if e.destination.ip.is_none() => e.destination.ip = Some(ip),
        Kind::Ip(ip) if e.destination.ip == Some(ip) => {}
        Kind::Url if e.source.url.as_deref() == Some(v) || e.destination.url.as_deref() == Some(v) => {}
        Kind::Url if bot != "l_spamlink" && e.destination.url.is_none() => {
            let _ = set_url(e, Side::Destination, v);
        }
        _ => {
            // "ip:port" repeating the remote columns, or anything else: keep it as given.
            let same = v.rsplit_once(':').is_some_and(|(ip, _)| {
                botwatch_model::parse_ip(ip).is_some_and(|ip| e.destination.ip == Some(ip))
            });
            if !same {
                e.set_attr("extra.domain", Value::Str(v.into()));
            }
        }
    }
}

/// `spam_ip:version:family` in the local port column of `l_spamlink`.
fn spamlink(e: &mut Event, ctx: &ParseContext<'_>, v: &str) {
    let parts: Vec<&str> = v.splitn(3, ':').collect();
    match parts.as_slice() {
        [ip, version, family] => {
            e.set_attr("extra.spam_ip", Value::Str((*ip).into()));
            e.set_attr("malware.version", Value::Str((*version).into()));
            let _ = util::set(e, ctx, "malware.name", family);
        }
        _ => e.set_attr("extra.local_port", Value::Str(v.into())),
    }
}

#[cfg(test)]
mod tests {

    use crate::spamhaus::PROVIDER;
    use botwatch_model::{ClassificationType, Collected};

    fn run(data: &'static [u8]) -> Collected {
        let spec = (PROVIDER.feeds)().into_iter().find(|f| f.id == "spamhaus_cert").unwrap();
        crate::util::parse_with(&spec, data)
    }

    #[test]
    fn bots_and_behaviours() {
        let out = run(b"; header\n111.111.111.183,AS11178,LV,1471111139,iotmirai,-,?,?,?,?\n\
198.51.100.54,AS8559,AT,1520084496,openrelay,192.168.0.6,,25,,tcp\n\
109.90.233.19,AS6830,AT,1441008351,patcher,dxxt.sinkhole.dk,212.227.20.19,80,1036,tcp\n\
999.1.1.1,AS1,AT,1,x\n1.2.3.4,AS1\n");
        assert_eq!(out.events.len(), 3);
        assert_eq!(out.events[0].malware_name.as_deref(), Some("mirai"));
        assert_eq!(out.events[0].classification_type, ClassificationType::InfectedSystem);
        assert_eq!(out.events[1].classification_type, ClassificationType::VulnerableSystem);
        assert_eq!(out.events[1].destination.ip.unwrap().to_string(), "192.168.0.6");
        assert_eq!(out.events[2].destination.fqdn.as_deref(), Some("dxxt.sinkhole.dk"));
        assert_eq!(out.events[2].source.port, Some(1036));
        assert_eq!(out.rejects.len(), 2);
    }
}
