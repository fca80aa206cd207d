//! URLhaus CSV feeds. The header is a comment, and its columns differ between the full
//! dump (`id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter`) and
//! the older ASN/country/TLD feeds (`Dateadded (UTC),URL,URL_status,Threat,[Tags,]Host,
//! IPaddress,ASnumber,Country`), so it is read rather than assumed.

use crate::generic::shared::{extra_key, set_host, set_url, split_record};
use crate::util;
use crate::{ParseContext, Parser};
use botwatch_model::{ClassificationType, Side, Sink, Value};
use bytes::Bytes;

const DEFAULT_COLUMNS: &[&str] =
    &["id", "dateadded", "url", "url_status", "last_online", "threat", "tags", "urlhaus_link", "reporter"];

fn norm(name: &str) -> String {
    let n = extra_key(name);
    let n = n.trim_start_matches("extra.");
    // "Dateadded (UTC)" names the same column as "dateadded".
    n.strip_suffix("_utc").unwrap_or(n).to_string()
}

fn header(comment: &str) -> Option<Vec<String>> {
    let fields = split_record(comment.trim(), ',', Some('"')).ok()?;
    let cols: Vec<String> = fields.iter().map(|f| norm(f)).collect();
    (cols.iter().any(|c| c == "url") && cols.iter().any(|c| c == "dateadded")).then_some(cols)
}

pub(super) struct Csv;

impl Parser for Csv {
    fn parse(&self, input: &Bytes, ctx: &ParseContext<'_>, sink: &mut dyn Sink) {
        let mut columns: Vec<String> = DEFAULT_COLUMNS.iter().map(|s| s.to_string()).collect();
        for line in util::lines(input) {
            let text = line.text();
            let t = text.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(c) = t.strip_prefix('#') {
                if let Some(h) = header(c) {
                    columns = h;
                }
                continue;
            }
            let fields = match split_record(t, ',', Some('"')) {
                Ok(f) => f,
                Err(m) => {
                    util::reject(sink, line.number, line.raw.clone(), m);
                    continue;
                }
            };
            let mut e = util::event(ctx, ClassificationType::MalwareDistribution, &line);
            let mut url_err = None;
            let mut host = None;
            for (i, v) in fields.iter().enumerate() {
                let v = v.trim();
                let col = columns.get(i).map(String::as_str).unwrap_or("");
                match col {
                    "url" => {
                        if let Err(m) = set_url(&mut e, Side::Source, v) {
                            url_err = Some(m);
                        }
                    }
                    _ if v.is_empty() => {}
                    "dateadded" => util::set_opt(&mut e, ctx, "time.source", v),
                    // URLhaus lists only malware downloads; the threat names what kind.
                    "threat" => e.classification_identifier = Some(v.into()),
                    // Older feeds separate tags with '|', newer ones with ','.
                    "tags" => e.set_attr("extra.tags", Value::Str(v.replace('|', ",").into())),
                    "host" => host = Some(v),
                    "ipaddress" => util::set_opt(&mut e, ctx, "source.ip", v),
                    "asnumber" => util::set_opt(&mut e, ctx, "source.asn", v),
                    "country" => util::set_opt(&mut e, ctx, "source.geolocation.cc", v),
                    "id" => e.set_attr("extra.urlhaus_id", Value::Str(v.into())),
                    "" => e.set_attr(&format!("extra.column_{}", i + 1), Value::Str(v.into())),
                    c => e.set_attr(&format!("extra.{c}"), Value::Str(v.into())),
                }
            }
            // The host column repeats the URL's host; it wins when both name one.
            if let Some(h) = host {
                let mut probe = e.clone();
                match set_host(&mut probe, Side::Source, h) {
                    Ok(()) if probe.source.fqdn.is_some() => e.source.fqdn = probe.source.fqdn,
                    Ok(()) => {}
                    Err(_) => e.set_attr("extra.invalid.source.fqdn", Value::Str(h.into())),
                }
            }
            match url_err {
                Some(m) => util::reject(sink, line.number, line.raw.clone(), m),
                None if e.source.url.is_none() => util::reject(sink, line.number, line.raw.clone(), "no URL"),
                None => sink.event(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {

    use crate::abusech::PROVIDER;
    use botwatch_model::Collected;

    fn run(data: &'static [u8]) -> Collected {
        let spec = (PROVIDER.feeds)().into_iter().find(|f| f.id == "abusech_urlhaus").unwrap();
        crate::util::parse_with(&spec, data)
    }

    #[test]
    fn current_format_without_host_column_takes_host_from_url() {
        let out = run(b"# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n\
\"1\",\"2024-01-01 00:00:00\",\"http://192.0.2.1:8080/x.sh\",\"online\",\"\",\"malware_download\",\"elf,mirai\",\"https://urlhaus.abuse.ch/url/1/\",\"r\"\n\
\"2\",\"2024-01-01 00:00:00\",\"http://Bad.Example/x\",\"offline\"\n");
        assert_eq!(out.events.len(), 2);
        assert_eq!(out.events[0].source.ip.unwrap().to_string(), "192.0.2.1");
        assert_eq!(out.events[0].attr("extra.tags").unwrap().as_str(), Some("elf,mirai"));
        assert_eq!(out.events[1].source.fqdn.as_deref(), Some("bad.example"));
    }

    #[test]
    fn empty_truncated_and_garbage_inputs() {
        assert!(run(b"").events.is_empty());
        let out = run(b"\"2019-01-01\",\"http://a b\"\n\"2019-01-01\",\"http://x.example/\ngarbage\n");
        assert!(out.events.is_empty());
        assert_eq!(out.rejects.len(), 3);
    }
}
