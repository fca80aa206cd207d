//! The partner registry (`[share]` and `[[partners]]` in `botwatch.toml`): who this node
//! exchanges with, how each authenticates, and what each is entitled to.

use crate::gate::Entitlement;
use crate::taxii::CollectionKind;
use botwatch_model::Tlp;
use serde::{Deserialize, Serialize};

/// `[share]`: this node as its partners see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareConfig {
    /// This node's name: its STIX identity and its provenance at partners.
    pub node: String,
    /// This node's organisation; a partner of the same organisation may receive
    /// TLP:AMBER+STRICT.
    pub organisation: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub contact: Option<String>,
    /// How observations no feed marked are handled.
    #[serde(with = "tlp_name")]
    pub default_tlp: Tlp,
    /// Classification types published as indicators.
    pub indicator_types: Vec<String>,
    /// Addresses of these countries count as inside the constituency (besides those of the
    /// `[constituency]` organisations).
    pub home_countries: Vec<String>,
    /// Federated aggregates: cells with fewer infected addresses are suppressed.
    pub k_anonymity: u64,
    /// Federated aggregates: differential-privacy epsilon per release (unset: no noise).
    pub epsilon: Option<f64>,
    /// TLP the federated aggregates are marked with.
    #[serde(with = "tlp_name")]
    pub aggregate_tlp: Tlp,
    /// A signed security bar document (`botwatch bar adopt` writes one): when set, it
    /// replaces `[bar]` everywhere and its version travels with the federated compliance.
    pub bar_document: Option<std::path::PathBuf>,
    /// `serve` republishes the `indicators` TAXII collection this often (0: only
    /// `botwatch share publish` and `taxii push` do).
    pub publish_every_minutes: u32,
    /// The TLP a feed's data is handled under when its lines carry no marking, by feed id or
    /// id prefix ending in `*` (e.g. `"shadowserver_*" = "amber"`, `"abusech_*" = "clear"`).
    /// An observation reported by several feeds takes the strictest; a marking on the data
    /// itself counts too. Feeds not listed: `default_tlp`.
    pub feed_tlp: std::collections::BTreeMap<String, String>,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            node: "botwatch".into(),
            organisation: None,
            country: None,
            contact: None,
            default_tlp: Tlp::Amber,
            indicator_types: vec![
                "c2-server".into(),
                "malware-distribution".into(),
                "malware-configuration".into(),
            ],
            home_countries: Vec::new(),
            k_anonymity: 10,
            epsilon: None,
            aggregate_tlp: Tlp::Green,
            bar_document: None,
            publish_every_minutes: 10,
            feed_tlp: Default::default(),
        }
    }
}

impl ShareConfig {
    /// `feed_tlp` parsed: (exact id or prefix, is prefix, TLP). Errors name the bad entry.
    pub fn feed_rules(&self) -> Result<Vec<(String, bool, Tlp)>, String> {
        self.feed_tlp
            .iter()
            .map(|(k, v)| {
                let t = Tlp::from_name(v)
                    .ok_or_else(|| format!("[share.feed_tlp] {k:?}: not a TLP level: {v:?}"))?;
                Ok(match k.strip_suffix('*') {
                    Some(p) => (p.to_string(), true, t),
                    None => (k.clone(), false, t),
                })
            })
            .collect()
    }

    pub fn producer(&self) -> crate::stix::Producer {
        crate::stix::Producer {
            name: self.node.clone(),
            country: self.country.clone(),
            contact: self.contact.clone(),
            default_tlp: self.default_tlp,
        }
    }
}

/// `[[partners]]`: one partner node or centre.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partner {
    pub name: String,
    pub country: Option<String>,
    pub organisation: Option<String>,
    /// The highest TLP the partner is entitled to (TLP:RED never leaves regardless).
    #[serde(with = "tlp_name", default = "green")]
    pub max_tlp: Tlp,
    /// May receive sightings (counts, first/last seen of indicators; infected hosts).
    #[serde(default)]
    pub sightings: bool,
    /// May receive addresses inside this node's constituency.
    #[serde(default)]
    pub home_addresses: bool,
    /// Collections (by alias: indicators, federation) the partner may read.
    #[serde(default = "default_read")]
    pub read: Vec<String>,
    /// Collections the partner may write (inbox).
    #[serde(default = "default_write")]
    pub write: Vec<String>,
    /// Bearer token the partner presents here. `env:NAME` and `file:PATH` read it from there.
    pub token: Option<String>,
    /// HTTP Basic password the partner presents here (user name: the partner's `name`).
    pub password: Option<String>,
    /// The partner's TAXII API root, for `botwatch taxii pull` and `push`.
    pub url: Option<String>,
    /// Collection ids to pull there (unset: every collection it lets this node read).
    #[serde(default)]
    pub collections: Vec<String>,
    /// Collection id to push to there.
    pub push_collection: Option<String>,
    /// This node's credentials there: a bearer token, or a user and password.
    pub remote_token: Option<String>,
    pub remote_username: Option<String>,
    pub remote_password: Option<String>,
    /// Base64 Ed25519 public key the partner signs its security bar with (`botwatch bar key`
    /// prints it there); `bar adopt` accepts the partner's bar only under this key.
    pub bar_key: Option<String>,
}

fn green() -> Tlp {
    Tlp::Green
}
fn default_read() -> Vec<String> {
    vec!["indicators".into(), "federation".into()]
}
fn default_write() -> Vec<String> {
    vec!["inbox".into()]
}

impl Partner {
    pub fn entitlement(&self, me: &ShareConfig) -> Entitlement {
        Entitlement {
            max_tlp: self.max_tlp,
            sightings: self.sightings,
            home_addresses: self.home_addresses,
            same_organisation: me.organisation.is_some() && self.organisation == me.organisation,
            default_tlp: me.default_tlp,
        }
    }

    pub fn may_read(&self, c: CollectionKind) -> bool {
        c.readable() && self.read.iter().any(|r| r == c.alias())
    }

    pub fn may_write(&self, c: CollectionKind) -> bool {
        c.writable() && self.write.iter().any(|r| r == c.alias())
    }
}

/// A secret from the config: literal, `env:NAME` or `file:PATH`.
pub use botwatch_model::secret;

/// Checks the registry: unique names, known collections, secrets readable.
pub fn check(partners: &[Partner]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for p in partners {
        if p.name.trim().is_empty() || p.name.contains(':') {
            return Err(format!("partner name {:?} must be non-empty and without ':'", p.name));
        }
        if !names.insert(p.name.as_str()) {
            return Err(format!("partner {:?} is listed twice", p.name));
        }
        for c in p.read.iter().chain(&p.write) {
            if CollectionKind::from_alias(c).is_none() {
                return Err(format!(
                    "partner {:?}: unknown collection {c:?} (indicators, federation, inbox)",
                    p.name
                ));
            }
        }
        for s in [&p.token, &p.password, &p.remote_token, &p.remote_password].into_iter().flatten() {
            secret(s).map_err(|e| format!("partner {:?}: {e}", p.name))?;
        }
    }
    Ok(())
}

pub mod tlp_name {
    use botwatch_model::Tlp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Tlp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(crate::tlp::lower(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tlp, D::Error> {
        let s = String::deserialize(d)?;
        Tlp::from_name(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "not a TLP level: {s:?} (clear, green, amber, amber+strict, red)"
            ))
        })
    }
}
