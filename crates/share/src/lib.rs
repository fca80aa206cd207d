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
