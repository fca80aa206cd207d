//! abuse.ch: Feodo Tracker (botnet C2 IP blocklist), URLhaus (malware distribution URLs) and
//! ThreatFox (IOCs by malware family).
//!
//! - Feodo Tracker IP blocklist, CSV and JSON, regenerated every 5 minutes:
//!   <https://feodotracker.abuse.ch/blocklist/>. The listed address is the C2 server, so
//!   it goes in `source.*` (IntelMQ's convention: the abusive party is the source).
//! - URLhaus CSV feeds (recent/online URLs, and the per-ASN, per-country and per-TLD
//!   feeds), updated every 5 minutes: <https://urlhaus.abuse.ch/feeds/>. The column set
//!   differs between variants and years, so columns are taken from the `# id,dateadded,…`
//!   (or older `# Dateadded (UTC),URL,…`) header comment.
//! - ThreatFox API responses (`{"query_status": "ok", "data": [...]}`) and the JSON
//!   exports (`{"<id>": [{...}]}`): <https://threatfox.abuse.ch/api/>.
//!
//! Terms: linked from each feed's header (Feodo Tracker: <https://feodotracker.abuse.ch/blocklist/>);
//! abuse.ch publishes these feeds for free use. Check the current terms before redistributing.

mod feodo;
mod threatfox;
mod urlhaus;

use crate::FeedSpec;
use crate::generic::shared::{base_name, contains_ci, first_byte, spec};
use crate::registry::Provider;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "abusech", feeds, detect };

const PROVIDER_NAME: &str = "abuse.ch";

fn feeds() -> Vec<FeedSpec> {
    vec![
        spec(
            "abusech_feodo_csv",
            "Feodo Tracker IP Blocklist (CSV)",
            PROVIDER_NAME,
            95.0,
            "https://feodotracker.abuse.ch/blocklist/",
            "Botnet C2 servers (Dridex, Emotet, QakBot, Pikabot, …) tracked by Feodo Tracker, CSV",
            Arc::new(feodo::Csv),
        ),
        spec(
            "abusech_feodo_json",
            "Feodo Tracker IP Blocklist (JSON)",
            PROVIDER_NAME,
            95.0,
            "https://feodotracker.abuse.ch/blocklist/",
            "Botnet C2 servers tracked by Feodo Tracker, JSON array with AS and host name",
            Arc::new(feodo::JsonParser),
        ),
        spec(
            "abusech_urlhaus",
            "URLhaus",
            PROVIDER_NAME,
            90.0,
            "https://urlhaus.abuse.ch/feeds/",
            "Malware distribution URLs from URLhaus, CSV (any of the full, online, ASN, country or TLD feeds)",
            Arc::new(urlhaus::Csv),
        ),
        spec(
            "abusech_threatfox",
            "ThreatFox",
            PROVIDER_NAME,
            80.0,
            "https://threatfox.abuse.ch/api/",
            "IOCs (C2 ip:port, domains, URLs, payload hashes) by malware family from ThreatFox, JSON",
            Arc::new(threatfox::JsonParser),
        ),
    ]
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let first = first_byte(head);
    let id = match first {
        Some(b'[')
            if contains_ci(head, "\"ip_address\"")
                && contains_ci(head, "\"malware\"")
                && (contains_ci(head, "\"last_online\"") || contains_ci(head, "\"first_seen\"")) =>
        {
            "abusech_feodo_json"
        }
        Some(b'{')
            if contains_ci(head, "\"threat_type\"")
                && contains_ci(head, "\"ioc_type\"")
                && (contains_ci(head, "\"ioc\"") || contains_ci(head, "\"ioc_value\"")) =>
        {
            "abusech_threatfox"
        }
        Some(b'#' | b'"')
            if contains_ci(head, "Feodo Tracker") || contains_ci(head, "\"first_seen_utc\",\"dst_ip\"") =>
        {
            "abusech_feodo_csv"
        }
        Some(b'#') if contains_ci(head, "URLhaus") => "abusech_urlhaus",
        _ => {
            let n = base_name(name)?;
            let json = first == Some(b'[') || first == Some(b'{');
            if n.contains("threatfox") && json {
                "abusech_threatfox"
            } else if (n.contains("feodo") || n.starts_with("ipblocklist")) && first == Some(b'[') {
                "abusech_feodo_json"
            } else if n.contains("feodo") && first == Some(b'#') {
                "abusech_feodo_csv"
            } else if n.contains("urlhaus") && first == Some(b'#') {
                "abusech_urlhaus"
            } else {
                return None;
            }
        }
    };
    Some(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_content_and_name() {
        let d = |n: Option<&str>, h: &[u8]| detect(n, h);
        assert_eq!(
            d(None, b"####\n# abuse.ch Feodo Tracker Botnet C2 IP Blocklist (CSV)\n").as_deref(),
            Some("abusech_feodo_csv")
        );
        assert_eq!(
            d(None, b"[{\"ip_address\":\"1.2.3.4\",\"malware\":\"x\",\"first_seen\":\"\"}]").as_deref(),
            Some("abusech_feodo_json")
        );
        assert_eq!(
            d(None, b"####\n# URLhaus Database Dump (CSV - recent URLs only)\n").as_deref(),
            Some("abusech_urlhaus")
        );
        assert_eq!(
            d(None, br#"{"query_status":"ok","data":[{"ioc":"x","threat_type":"botnet_cc","ioc_type":"domain"}]}"#).as_deref(),
            Some("abusech_threatfox")
        );
        assert_eq!(d(Some("x/urlhaus_online.csv"), b"#\n").as_deref(), Some("abusech_urlhaus"));
        assert_eq!(d(Some("drop.txt"), b"; Spamhaus DROP List\n"), None);
        assert_eq!(d(Some("feodo.html"), b"<!DOCTYPE html>"), None);
    }
}
