//! Who held an address when: one lease, accounting session or CGNAT port-block allocation.
//!
//! Lives in the model (not in `enrich`) because both the parsers/index in `enrich` and the
//! `store` persist and read the same record, and `store` must not depend on `enrich`.

use crate::Timestamp;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One interval during which `subscriber` held `ip` (and, behind CGNAT, the port block
/// `ports` on that public address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// A /32 or /128 for an address lease; a shorter prefix for a delegated IPv6 prefix.
    pub ip: IpNet,
    /// Inclusive port range on the public address, for CGNAT port-block allocations.
    pub ports: Option<(u16, u16)>,
    pub start: Timestamp,
    /// `None`: still open (no Stop, `ends never`, no release seen).
    pub end: Option<Timestamp>,
    /// Primary subscriber id: line id (option 82 remote-id), RADIUS User-Name, MAC, …
    pub subscriber: String,
    /// Everything else the source recorded about the holder, as (kind, value) pairs:
    /// `remote-id`, `circuit-id`, `mac`, `user-name`, `inside-ip`, `session-id`, …
    pub identifiers: Vec<(String, String)>,
    /// Format and file, e.g. `dhcpd:dhcpd.leases`.
    pub source: String,
    /// Line of the record's first line in its source file (1-based).
    pub line: u64,
}

impl LeaseRecord {
    /// Whether the interval covers `t` (start inclusive, end exclusive).
    pub fn covers(&self, t: Timestamp) -> bool {
        self.start <= t && self.end.is_none_or(|e| t < e)
    }

    /// The value of the first identifier of `kind`.
    pub fn identifier(&self, kind: &str) -> Option<&str> {
        self.identifiers.iter().find(|(k, _)| k == kind).map(|(_, v)| v.as_str())
    }
}
