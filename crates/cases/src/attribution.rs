//! What the case engine needs to know about an address: who is responsible for it and,
//! where lease records allow, which subscriber held it. `botwatch-enrich` implements this
//! from RIR data and lease logs; the engine depends only on the trait.

use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// An organisation (constituency) responsible for addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrgInfo {
    pub id: String,
    pub name: String,
    pub abuse_emails: Vec<String>,
    pub webhook: Option<String>,
    /// Language of notices (BCP 47 primary tag).
    pub lang: String,
    /// Offset of the organisation's local time from UTC, for quiet hours.
    pub tz_offset_minutes: i32,
    /// Subscribers served, when known: infections per 1,000 subscribers need it.
    pub subscribers: Option<u64>,
}

/// Who held an address at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberHit {
    Exact(String),
    /// Several subscribers could have held it (CGNAT without a port, overlapping leases).
    Ambiguous(String),
    NotFound,
}

pub trait Attributor {
    fn org(&self, ip: IpAddr, asn: Option<u32>) -> Option<OrgInfo>;
    /// The organisation by its id, for contacts at notice time and subscriber counts.
    fn org_by_id(&self, id: &str) -> Option<OrgInfo>;
    fn subscriber(&self, ip: IpAddr, port: Option<u16>, at: Timestamp) -> SubscriberHit;
}

/// No attribution at all: every case is keyed by address and has no organisation.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAttribution;

impl Attributor for NoAttribution {
    fn org(&self, _: IpAddr, _: Option<u32>) -> Option<OrgInfo> {
        None
    }
    fn org_by_id(&self, _: &str) -> Option<OrgInfo> {
        None
    }
    fn subscriber(&self, _: IpAddr, _: Option<u16>, _: Timestamp) -> SubscriberHit {
        SubscriberHit::NotFound
    }
}

/// Fixed tables in memory: organisations by AS number or exact address, subscribers by
/// address with validity intervals. For tests, benches and small deployments.
#[derive(Debug, Clone, Default)]
pub struct StaticAttributor {
    pub orgs: HashMap<String, OrgInfo>,
    pub org_by_asn: HashMap<u32, String>,
    pub org_by_ip: HashMap<IpAddr, String>,
    /// Address → (subscriber, from, until) leases; overlapping leases at an instant are
    /// reported as ambiguous.
    pub leases: HashMap<IpAddr, Vec<(String, Timestamp, Timestamp)>>,
}

impl StaticAttributor {
    pub fn add_org(&mut self, org: OrgInfo) {
        self.orgs.insert(org.id.clone(), org);
    }
    pub fn lease(&mut self, ip: IpAddr, subscriber: &str, from: Timestamp, until: Timestamp) {
        self.leases.entry(ip).or_default().push((subscriber.to_string(), from, until));
    }
}

impl Attributor for StaticAttributor {
    fn org(&self, ip: IpAddr, asn: Option<u32>) -> Option<OrgInfo> {
        let id = self.org_by_ip.get(&ip).or_else(|| asn.and_then(|a| self.org_by_asn.get(&a)))?;
        self.orgs.get(id).cloned()
    }
    fn org_by_id(&self, id: &str) -> Option<OrgInfo> {
        self.orgs.get(id).cloned()
    }
    fn subscriber(&self, ip: IpAddr, _: Option<u16>, at: Timestamp) -> SubscriberHit {
        let Some(leases) = self.leases.get(&ip) else { return SubscriberHit::NotFound };
        let mut hits = leases.iter().filter(|(_, f, u)| *f <= at && at < *u);
        match (hits.next(), hits.next()) {
            (Some((s, _, _)), None) => SubscriberHit::Exact(s.clone()),
            (Some(_), Some(_)) => SubscriberHit::Ambiguous("overlapping leases".into()),
            _ => SubscriberHit::NotFound,
        }
    }
}
