//! Spamhaus: the DROP lists (networks and ASNs to drop all traffic from) and the CERT bots
//! feed (infected and abusive hosts in a CERT's constituency).
//!
//! - DROP, EDROP, DROPv6 (`CIDR ; SBLid`, `;` comments) and ASN-DROP
//!   (`ASnnn ; CC | AS name`): <https://www.spamhaus.org/blocklists/do-not-route-or-peer/>.
//!   EDROP was merged into DROP in 2024; its file now holds only comments. The JSON
//!   variants (`drop_v4.json`, `drop_v6.json`, `asndrop.json`) are NDJSON with a trailing
//!   `{"type": "metadata", ...}` record. Updated about daily; `Last-Modified` (or the
//!   metadata timestamp) becomes `time.source`. Classification `blocklist`.
//!   Terms: <https://www.spamhaus.org/drop/terms/> (free of charge subject to the terms).
//! - CERT bots feed (`ip, asn, country, lastseen, botname, domain, remote_ip, remote_port,
//!   local_port, protocol`), hourly, for CERTs under agreement with Spamhaus; not for
//!   redistribution. The format is documented only in the file header; the CERT Insight
//!   Portal is described at
//!   <https://www.spamhaus.org/resource-hub/botnet-c-c/spamhaus-cert-insight-portal-enhanced-botnet-c-and-c-intelligence/>.

mod cert;
mod drop;

use crate::FeedSpec;
use crate::generic::shared::{base_name, contains_ci, first_byte, head_lines, spec};
use crate::registry::Provider;
use std::sync::Arc;

pub const PROVIDER: Provider = Provider { name: "spamhaus", feeds, detect };

const NAME: &str = "Spamhaus";
const DROP_DOC: &str = "https://www.spamhaus.org/blocklists/do-not-route-or-peer/";

fn feeds() -> Vec<FeedSpec> {
    let text = |id: &str, name: &str, desc: &str| {
        spec(id, name, NAME, 100.0, DROP_DOC, desc, Arc::new(drop::Text { asn: false }))
    };
    vec![
        text(
            "spamhaus_drop",
            "DROP",
            "Networks hijacked or leased by professional spam or cyber-crime operations, CIDR ; SBL",
        ),
        text("spamhaus_edrop", "EDROP", "Extended DROP (merged into DROP in 2024), CIDR ; SBL"),
        text("spamhaus_dropv6", "DROPv6", "IPv6 DROP networks, CIDR ; SBL"),
        spec(
            "spamhaus_asndrop",
            "ASN-DROP",
            NAME,
            100.0,
            DROP_DOC,
            "Autonomous systems controlled by spammers or cyber-criminals, ASN ; CC | AS name",
            Arc::new(drop::Text { asn: true }),
        ),
        spec(
            "spamhaus_drop_json",
            "DROP (JSON)",
            NAME,
            100.0,
            DROP_DOC,
            "DROP, DROPv6 or ASN-DROP as NDJSON records with a trailing metadata record",
            Arc::new(drop::Ndjson),
        ),
        spec(
            "spamhaus_cert",
            "CERT Bots",
            NAME,
            100.0,
            "https://www.spamhaus.org/resource-hub/botnet-c-c/spamhaus-cert-insight-portal-enhanced-botnet-c-and-c-intelligence/",
            "Infected and abusive hosts seen by Spamhaus in a CERT's networks, CSV with bot name and C2",
            Arc::new(cert::Csv),
        ),
    ]
}

fn detect(name: Option<&str>, head: &[u8]) -> Option<String> {
    let n = base_name(name).unwrap_or_default();
    let first = first_byte(head);
    if first == Some(b'{') {
        let records = head_lines(head).filter(|l| !l.trim().is_empty()).take(3).all(|l| {
            let l = l.trim_start();
            l.starts_with('{')
                && (l.contains("\"sblid\"") || l.contains("\"asn\"") || l.contains("\"metadata\""))
        });
        let spamhaus = contains_ci(head, "\"sblid\"") || contains_ci(head, "Spamhaus");
        return (records && spamhaus).then(|| "spamhaus_drop_json".to_string());
    }
    if first != Some(b';') {
        return None;
    }
    let id = if contains_ci(head, "; ip, asn, country, lastseen, botname")
        || contains_ci(head, "; Bots filtered by")
    {
        "spamhaus_cert"
    } else if contains_ci(head, "asndrop") || first_data_line_is_asn(head) {
        "spamhaus_asndrop"
    } else if contains_ci(head, "Spamhaus EDROP") || contains_ci(head, "/drop/edrop.txt") {
        "spamhaus_edrop"
    } else if contains_ci(head, "Spamhaus IPv6 DROP") || contains_ci(head, "/drop/dropv6.txt") {
        "spamhaus_dropv6"
    } else if contains_ci(head, "Spamhaus DROP")
        || contains_ci(head, "spamhaus.org/drop/")
        || n.contains("spamhaus")
    {
        "spamhaus_drop"
    } else {
        return None;
    };
    Some(id.to_string())
}

fn first_data_line_is_asn(head: &[u8]) -> bool {
    head_lines(head).map(str::trim).find(|l| !l.is_empty() && !l.starts_with(';')).is_some_and(|l| {
        let b = l.as_bytes();
        b.len() > 2 && b[..2].eq_ignore_ascii_case(b"AS") && b[2].is_ascii_digit()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_list() {
        let d = |h: &[u8]| detect(None, h);
        assert_eq!(
            d(b"; Spamhaus DROP List 2025/01/17\n1.10.16.0/20 ; SBL256894\n").as_deref(),
            Some("spamhaus_drop")
        );
        assert_eq!(d(b"; Spamhaus EDROP List 2023/12/01\n").as_deref(), Some("spamhaus_edrop"));
        assert_eq!(
            d(b"; This list has been merged into https://www.spamhaus.org/drop/drop.txt\n; Spamhaus EDROP List\n").as_deref(),
            Some("spamhaus_edrop")
        );
        assert_eq!(d(b"; Spamhaus IPv6 DROP List\n").as_deref(), Some("spamhaus_dropv6"));
        assert_eq!(
            d(b"; Spamhaus DROP List\n; https://www.spamhaus.org/drop/asndrop.txt\n").as_deref(),
            Some("spamhaus_asndrop")
        );
        assert_eq!(d(b"; ip, asn, country, lastseen, botname, domain\n").as_deref(), Some("spamhaus_cert"));
        assert_eq!(
            d(b"{\"cidr\":\"1.10.16.0/20\",\"sblid\":\"SBL256894\",\"rir\":\"apnic\"}\n").as_deref(),
            Some("spamhaus_drop_json")
        );
        assert_eq!(d(b"{\"Event\": {}}"), None);
        assert_eq!(d(b"; some other list\n1.2.3.4\n"), None);
        assert_eq!(d("; x\néé\n".as_bytes()), None);
    }
}
