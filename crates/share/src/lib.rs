//! Sharing with partners: what leaves a node and how.
//!
//! - [`gate`]: the one choke point every export passes (TLP 2.0, sightings, addresses at
//!   home, subscriber data); nothing is written for a partner without its verdict.
//! - [`stix`]: STIX 2.1 objects built from observations, with deterministic ids so a
//!   re-export, and another node exporting the same indicator, name it the same.
//! - [`taxii`]: TAXII 2.1 resources (discovery, API root, collections, envelopes, manifest,
//!   status) shared by the server and the client.
//! - [`misp`]: a MISP feed (`manifest.json`, one file per event, `hashes.csv`).
//! - [`federation`]: per day × country × ASN × family aggregates, k-anonymity and
//!   differential privacy, as STIX objects of a published extension.

pub mod bar;
pub mod federation;
pub mod gate;
pub mod ids;
pub mod misp;
pub mod partners;
pub mod publish;
pub mod stix;
pub mod taxii;
pub mod tlp;

pub use gate::{Entitlement, Label, Verdict, Withheld};

/// Fuzz entry (`fuzz/fuzz_targets/share_objects.rs`): what a partner sends is read here —
/// federated cells, signed bars (verified against a fixed key), TAXII cursors, TLP
/// markings. Must never panic, whatever the bytes.
pub fn fuzz(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = taxii::decode_next(&text, "");
    let _ = taxii::decode_next(&text, &text);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let objects: Vec<&serde_json::Value> = match v.get("objects").and_then(|o| o.as_array()) {
        Some(a) => a.iter().collect(),
        None => vec![&v],
    };
    for o in objects {
        let _ = federation::cell_from_object(o);
        if let Some(b) = bar::from_object(o) {
            let _ = bar::verify(&b, &b.public_key);
            let _ = bar::verify(&b, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        }
        let _ = tlp::of_object(o);
    }
}
