//! Constituencies: which organisation answers for an address.
//!
//! A national CERT's constituency is a list of organisations (ISPs, hosting companies,
//! CERTs of their own) with the networks and ASNs each is responsible for, where to send
//! notices and in which language. Loaded from TOML (`[[org]]` tables) or CSV (lists
//! `;`-separated). An address belongs to the organisation with the most specific network
//! containing it — a customer's /24 inside its ISP's /16 goes to the customer — and failing
//! any network, to the organisation owning the address's origin ASN.
//!
//! ```
//! use botwatch_enrich::owners::Constituency;
//! let c = Constituency::from_toml(r#"
//! [[org]]
//! id = "example-isp"
//! name = "Example ISP"
//! networks = ["192.0.2.0/24"]
//! abuse_emails = ["abuse@isp.example"]
//! "#).unwrap();
//! assert_eq!(c.org_for("192.0.2.9".parse().unwrap(), None).unwrap().id, "example-isp");
//! ```

use crate::ranges::{RangeBuilder, RangeTable};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// An organisation of the constituency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub asns: Vec<u32>,
    #[serde(default)]
    pub networks: Vec<IpNet>,
    #[serde(default)]
    pub abuse_emails: Vec<String>,
    #[serde(default)]
    pub webhook: Option<String>,
    /// Language of notices (BCP 47 primary tag).
    #[serde(default = "default_lang")]
    pub lang: String,
    /// Offset of the organisation's local time from UTC, for quiet hours.
    #[serde(default)]
    pub timezone_offset_minutes: i32,
    /// Subscriber count, the denominator of infection rates.
    #[serde(default)]
    pub subscribers: Option<u64>,
    /// `isp`, `hosting`, `cert`, `government`, … (`other` when not said).
    #[serde(default = "default_kind")]
    pub kind: String,
}

fn default_lang() -> String {
    "en".into()
}

fn default_kind() -> String {
    "other".into()
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OwnersError {
    #[error("constituency TOML, line {line}: {reason}")]
    Toml { line: u64, reason: String },
    #[error("constituency CSV, line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("constituency: {0}")]
    Invalid(String),
}

/// Organisations with their address and ASN look-up tables.
#[derive(Debug, Default)]
pub struct Constituency {
    orgs: Vec<Org>,
    v4: RangeTable<u32, u32>,
    v6: RangeTable<u128, u32>,
    by_asn: HashMap<u32, u32>,
    by_id: HashMap<String, u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    org: Vec<Org>,
}

impl Constituency {
    /// Checks the list (unique ids, no network or ASN claimed twice) and builds the tables.
    pub fn new(orgs: Vec<Org>) -> Result<Self, OwnersError> {
        let mut by_id = HashMap::new();
        let mut by_asn = HashMap::new();
        let mut nets: HashMap<IpNet, &str> = HashMap::new();
        let mut b4 = RangeBuilder::default();
        let mut b6 = RangeBuilder::default();
        for (i, o) in orgs.iter().enumerate() {
            let i = i as u32;
            if o.id.trim().is_empty() {
                return Err(OwnersError::Invalid(format!("organisation '{}' has an empty id", o.name)));
            }
            if by_id.insert(o.id.clone(), i).is_some() {
                return Err(OwnersError::Invalid(format!("organisation id '{}' appears twice", o.id)));
            }
            for &a in &o.asns {
                if let Some(other) = by_asn.insert(a, i) {
                    return Err(OwnersError::Invalid(format!(
                        "AS{a} is claimed by both '{}' and '{}'",
                        orgs[other as usize].id, o.id
                    )));
                }
            }
            for n in &o.networks {
                let n = n.trunc();
                if let Some(other) = nets.insert(n, &o.id) {
                    if other != o.id {
                        return Err(OwnersError::Invalid(format!(
                            "network {n} is claimed by both '{other}' and '{}'",
                            o.id
                        )));
                    }
                    continue;
                }
                match n {
                    IpNet::V4(n) => b4.push(u32::from(n.network()), u32::from(n.broadcast()), i),
                    IpNet::V6(n) => b6.push(u128::from(n.network()), u128::from(n.broadcast()), i),
                }
            }
        }
        Ok(Constituency { v4: b4.build(), v6: b6.build(), by_asn, by_id, orgs })
    }

    /// `[[org]]` tables; see [`Org`] for the keys.
    pub fn from_toml(s: &str) -> Result<Self, OwnersError> {
        let f: TomlFile = toml::from_str(s).map_err(|e| {
            let line = e.span().map_or(0, |sp| s[..sp.start.min(s.len())].matches('\n').count() as u64 + 1);
            OwnersError::Toml { line, reason: e.message().to_string() }
        })?;
        Constituency::new(f.org)
    }

    /// A header row naming the columns: `id` and `name` required; `asns`, `networks`,
    /// `abuse_emails` (`;`-separated lists), `webhook`, `lang`, `timezone_offset_minutes`,
    /// `subscribers`, `kind` optional.
    pub fn from_csv(data: &[u8]) -> Result<Self, OwnersError> {
        let mut rd = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(data);
        let err = |line: u64, reason: String| OwnersError::Csv { line, reason };
        let header: Vec<String> =
            rd.headers().map_err(|e| err(1, e.to_string()))?.iter().map(str::to_string).collect();
        const KNOWN: [&str; 10] = [
            "id",
            "name",
            "asns",
            "networks",
            "abuse_emails",
            "webhook",
            "lang",
            "timezone_offset_minutes",
            "subscribers",
            "kind",
        ];
        if let Some(h) = header.iter().find(|h| !KNOWN.contains(&h.as_str())) {
            return Err(err(1, format!("unknown column '{h}' (known: {})", KNOWN.join(", "))));
        }
        for req in ["id", "name"] {
            if !header.iter().any(|h| h == req) {
                return Err(err(1, format!("missing column '{req}'")));
            }
        }
        let mut orgs = Vec::new();
        for rec in rd.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                err(line, e.to_string())
            })?;
            let line = rec.position().map_or(0, |p| p.line());
            let get = |c: &str| header.iter().position(|h| h == c).and_then(|i| rec.get(i)).unwrap_or("");
            let list = |c: &str| -> Vec<&str> {
                get(c).split(';').map(str::trim).filter(|s| !s.is_empty()).collect()
            };
            let mut asns = Vec::new();
            for a in list("asns") {
                let a = a.strip_prefix("AS").or(a.strip_prefix("as")).unwrap_or(a);
                asns.push(a.parse().map_err(|_| err(line, format!("bad ASN '{a}'")))?);
            }
            let mut networks = Vec::new();
            for n in list("networks") {
                let net = n.parse::<IpNet>().or_else(|_| n.parse::<IpAddr>().map(IpNet::from));
                networks.push(net.map_err(|_| err(line, format!("bad network '{n}'")))?);
            }
            let num = |c: &str| -> Result<Option<i64>, OwnersError> {
                let v = get(c);
                if v.is_empty() {
                    return Ok(None);
                }
                v.parse().map(Some).map_err(|_| err(line, format!("bad {c} '{v}'")))
            };
            let nonempty =
                |c: &str, d: &str| if get(c).is_empty() { d.to_string() } else { get(c).to_string() };
            orgs.push(Org {
                id: get("id").to_string(),
                name: get("name").to_string(),
                asns,
                networks,
                abuse_emails: list("abuse_emails").into_iter().map(str::to_string).collect(),
                webhook: Some(get("webhook").to_string()).filter(|s| !s.is_empty()),
                lang: nonempty("lang", "en"),
                timezone_offset_minutes: num("timezone_offset_minutes")?.unwrap_or(0) as i32,
                subscribers: match num("subscribers")? {
                    Some(n) if n < 0 => return Err(err(line, "negative subscribers".into())),
                    n => n.map(|n| n as u64),
                },
                kind: nonempty("kind", "other"),
            });
        }
        Constituency::new(orgs)
    }

    /// TOML or CSV, by the file name's extension (`.toml` → TOML, anything else → CSV).
    pub fn load(name: &str, data: &[u8]) -> Result<Self, OwnersError> {
        if name.ends_with(".toml") {
            let s = std::str::from_utf8(data).map_err(|e| OwnersError::Invalid(format!("{name}: {e}")))?;
            Constituency::from_toml(s)
        } else {
            Constituency::from_csv(data)
        }
    }

    /// The organisation with the most specific network containing `ip`; else the one owning
    /// `asn` (the address's origin AS, from [`crate::IpDb`]).
    pub fn org_for(&self, ip: IpAddr, asn: Option<u32>) -> Option<&Org> {
        let by_net = match ip {
            IpAddr::V4(a) => self.v4.get(u32::from(a)).map(|x| x.2),
            IpAddr::V6(a) => self.v6.get(u128::from(a)).map(|x| x.2),
        };
        by_net.or_else(|| asn.and_then(|a| self.by_asn.get(&a).copied())).map(|i| &self.orgs[i as usize])
    }

    pub fn get(&self, id: &str) -> Option<&Org> {
        self.by_id.get(id).map(|&i| &self.orgs[i as usize])
    }

    pub fn orgs(&self) -> &[Org] {
        &self.orgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TOML: &str = r#"
[[org]]
id = "isp"
name = "Example ISP"
asns = [64500]
networks = ["10.0.0.0/8", "2001:db8::/32"]
abuse_emails = ["abuse@isp.example"]
kind = "isp"
subscribers = 120000
timezone_offset_minutes = 60
lang = "de"

[[org]]
id = "host"
name = "Hosting customer"
networks = ["10.1.0.0/16", "2001:db8:5::/48"]
webhook = "https://hook.example/x"
"#;

    #[test]
    fn most_specific_network_then_asn() {
        let c = Constituency::from_toml(TOML).unwrap();
        let f = |ip: &str, asn| c.org_for(ip.parse().unwrap(), asn).map(|o| o.id.as_str());
        assert_eq!(f("10.2.3.4", None), Some("isp"));
        assert_eq!(f("10.1.3.4", None), Some("host"));
        assert_eq!(f("2001:db8:5::1", None), Some("host"));
        assert_eq!(f("2001:db8:6::1", None), Some("isp"));
        assert_eq!(f("192.0.2.1", Some(64500)), Some("isp"), "by ASN");
        assert_eq!(f("192.0.2.1", Some(64501)), None);
        assert_eq!(f("10.1.0.1", Some(64999)), Some("host"), "network beats ASN");
        let isp = c.get("isp").unwrap();
        assert_eq!(
            (isp.lang.as_str(), isp.subscribers, isp.timezone_offset_minutes),
            ("de", Some(120000), 60)
        );
        assert_eq!(c.get("host").unwrap().lang, "en", "default");
        assert_eq!(c.get("host").unwrap().kind, "other");
    }

    #[test]
    fn csv_loads_the_same_and_errors_name_the_line() {
        let csv = "id,name,asns,networks,abuse_emails,lang,subscribers,kind\n\
isp,Example ISP,AS64500,10.0.0.0/8;2001:db8::/32,abuse@isp.example;noc@isp.example,de,120000,isp\n\
host,Hosting customer,,10.1.0.0/16,,,,\n";
        let c = Constituency::from_csv(csv.as_bytes()).unwrap();
        assert_eq!(c.org_for("10.1.0.1".parse().unwrap(), None).unwrap().id, "host");
        assert_eq!(c.get("isp").unwrap().abuse_emails.len(), 2);
        assert_eq!(c.get("isp").unwrap().asns, [64500]);
        let bad = "id,name,networks\nok,OK,10.0.0.0/8\nbad,Bad,10.0.0.0/33\n";
        assert_eq!(
            Constituency::from_csv(bad.as_bytes()).unwrap_err(),
            OwnersError::Csv { line: 3, reason: "bad network '10.0.0.0/33'".into() }
        );
        let e = Constituency::from_toml("[[org]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"nope\"]\n")
            .unwrap_err();
        assert!(matches!(e, OwnersError::Toml { line: 4, .. }), "{e}");
        let e = Constituency::from_toml(
            "[[org]]\nid = \"a\"\nname = \"A\"\nasns = [1]\n[[org]]\nid = \"b\"\nname = \"B\"\nasns = [1]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("AS1 is claimed by both 'a' and 'b'"), "{e}");
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_brute_force(
            nets in prop::collection::vec((0u8..6, any::<u32>(), 4u8..=32), 1..30),
            probes in prop::collection::vec(any::<u32>(), 50),
        ) {
            // Addresses confined to 10.0.0.0/8's first few /16s so that networks nest often.
            let mut seen = std::collections::HashSet::new();
            let mut orgs: Vec<Org> = (0..6).map(|i| Org {
                id: format!("o{i}"), name: format!("O{i}"), asns: vec![64500 + i], networks: vec![],
                abuse_emails: vec![], webhook: None, lang: "en".into(), timezone_offset_minutes: 0,
                subscribers: None, kind: "isp".into(),
            }).collect();
            for (o, a, len) in nets {
                let a = 0x0a00_0000 | (a & 0x0003_ffff);
                let n: IpNet = ipnet::Ipv4Net::new(a.into(), len.max(8)).unwrap().trunc().into();
                if seen.insert(n) {
                    orgs[o as usize].networks.push(n);
                }
            }
            let c = Constituency::new(orgs.clone()).unwrap();
            for p in probes {
                let ip = IpAddr::V4((0x0a00_0000 | (p & 0x0003_ffff)).into());
                let want = orgs.iter()
                    .flat_map(|o| o.networks.iter().map(move |n| (n, o)))
                    .filter(|(n, _)| n.contains(&ip))
                    .max_by_key(|(n, _)| n.prefix_len())
                    .map(|(_, o)| o.id.clone())
                    .or(Some("o3".to_string()));
                prop_assert_eq!(c.org_for(ip, Some(64503)).map(|o| o.id.clone()), want);
            }
        }
    }
}
