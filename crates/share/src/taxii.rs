//! TAXII 2.1 resources (OASIS TAXII 2.1 §4–5), shared by `botwatch serve` and the client.

use crate::ids;
use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};

pub const MEDIA_TAXII: &str = "application/taxii+json;version=2.1";
pub const MEDIA_STIX: &str = "application/stix+json;version=2.1";
/// Largest page the server hands out, whatever `limit` asks.
pub const MAX_PAGE: usize = 1000;
/// Largest POST body accepted (bytes), announced as the API root's `max_content_length`.
pub const MAX_CONTENT: usize = 64 << 20;

/// The collections every node offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionKind {
    /// What this node publishes: indicators, sightings, infected hosts abroad.
    Indicators,
    /// Federated aggregates and security bar documents.
    Federation,
    /// Where partners post what they share with this node.
    Inbox,
}

impl CollectionKind {
    pub const ALL: [CollectionKind; 3] =
        [CollectionKind::Indicators, CollectionKind::Federation, CollectionKind::Inbox];

    pub fn alias(self) -> &'static str {
        match self {
            CollectionKind::Indicators => "indicators",
            CollectionKind::Federation => "federation",
            CollectionKind::Inbox => "inbox",
        }
    }

    pub fn from_alias(s: &str) -> Option<CollectionKind> {
        CollectionKind::ALL.into_iter().find(|c| c.alias() == s)
    }

    /// A stable collection id per node (TAXII wants a UUID).
    pub fn id(self, node: &str) -> String {
        ids::sdo("collection", &[node, self.alias()]).trim_start_matches("collection--").to_string()
    }

    pub fn title(self) -> &'static str {
        match self {
            CollectionKind::Indicators => "Indicators and sightings",
            CollectionKind::Federation => "Federated statistics and security bar documents",
            CollectionKind::Inbox => "Inbox: partners post what they share with this node",
        }
    }

    /// Whether partners read it (or only write).
    pub fn readable(self) -> bool {
        self != CollectionKind::Inbox
    }

    pub fn writable(self) -> bool {
        self == CollectionKind::Inbox
    }
}

/// TAXII timestamps carry microseconds, so `added_after` is exact.
pub fn time(t: Timestamp) -> String {
    match chrono::DateTime::from_timestamp_micros(t.micros()) {
        Some(d) => d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => "1970-01-01T00:00:00.000000Z".into(),
    }
}

/// A status resource (§4.3.1).
pub fn status(
    id: &str,
    request_time: Timestamp,
    successes: &[(String, String)],
    failures: &[(String, String, String)],
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "status": "complete",
        "request_timestamp": time(request_time),
        "total_count": successes.len() + failures.len(),
        "success_count": successes.len(),
        "successes": successes.iter().map(|(id, v)| serde_json::json!({"id": id, "version": v})).collect::<Vec<_>>(),
        "failure_count": failures.len(),
        "failures": failures.iter().map(|(id, v, m)| serde_json::json!({"id": id, "version": v, "message": m})).collect::<Vec<_>>(),
        "pending_count": 0,
    })
}

/// An opaque page cursor: the last sequence number handed out and a check of the filter,
/// so a `next` reused with other filters is refused rather than answered wrongly.
pub fn encode_next(seq: i64, filter_key: &str) -> String {
    format!("{seq}.{:08x}", crc(filter_key))
}

pub fn decode_next(next: &str, filter_key: &str) -> Option<i64> {
    let (seq, check) = next.split_once('.')?;
    (check == format!("{:08x}", crc(filter_key))).then(|| seq.parse().ok()).flatten()
}

fn crc(s: &str) -> u32 {
    // FNV-1a: a cursor check, not a security boundary (the filters are the caller's own).
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_only_with_the_same_filter() {
        let n = encode_next(42, "type=indicator");
        assert_eq!(decode_next(&n, "type=indicator"), Some(42));
        assert_eq!(decode_next(&n, "type=sighting"), None);
        assert_eq!(decode_next("garbage", ""), None);
    }

    #[test]
    fn collection_ids_are_uuids_and_differ_per_node() {
        let a = CollectionKind::Indicators.id("A");
        assert_eq!(a.len(), 36);
        assert_ne!(a, CollectionKind::Indicators.id("B"));
        assert_ne!(a, CollectionKind::Inbox.id("A"));
    }
}
