//! botwatch's case engine: sightings become *cases* an abuse desk works, one per
//! (subscriber or address, threat), moving through the lifecycle of RFC 6561 §5 —
//! detection, notification, escalation up to a walled garden, remediation — with every
//! notice written to the durable outbox in the same transaction as the change causing it.
//!
//! - [`policy::Policy`]: the `[cases]` section (what opens a case, delays, escalation).
//! - [`engine::CaseEngine`]: `process` (events → cases, incremental and idempotent via a
//!   cursor), `tick` (time-driven transitions), `ack`, `close`, `notify_now` and `escalate`
//!   for operators.
//! - [`attribution::Attributor`]: the address → organisation / subscriber lookup the engine
//!   needs, implemented elsewhere (`botwatch-enrich`); [`attribution::StaticAttributor`] is a
//!   table in memory.
//! - [`compliance`]: per-organisation metrics and the "minimum security bar", per
//!   organisation and per subscriber.
//!
//! ```
//! use botwatch_cases::{CaseEngine, Policy, attribution::NoAttribution};
//! use botwatch_model::{ManualClock, Timestamp};
//! use botwatch_store::{StoreConfig, sqlite::SqliteStore};
//! let mut store = SqliteStore::open_in_memory(StoreConfig::default()).unwrap();
//! let engine = CaseEngine::new(Policy::default()).unwrap();
//! let clock = ManualClock::new(Timestamp::from_secs(1_700_000_000));
//! let sum = engine.update(&mut store, &NoAttribution, &clock, 10_000).unwrap();
//! assert_eq!(sum.process.opened, 0, "no events yet");
//! ```

pub mod attribution;
pub mod compliance;
pub mod engine;
pub mod policy;

pub use attribution::{Attributor, NoAttribution, OrgInfo, StaticAttributor, SubscriberHit};
pub use botwatch_store::cases::{CaseQuery, CaseStore};
pub use compliance::{Bar, OrgCompliance, SubscriberStatus, Verdict};
pub use engine::{
    CaseEngine, ProcessSummary, TickSummary, UpdateProgress, UpdateSummary, allowed, is_special,
};
pub use policy::Policy;

use botwatch_model::CaseState;

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("store: {0}")]
    Store(#[from] botwatch_store::StoreError),
    #[error("no case {0}")]
    NotFound(i64),
    #[error("case {id} cannot go from {} to {}", from.as_str(), to.as_str())]
    Transition { id: i64, from: CaseState, to: CaseState },
    #[error(
        "case {0} has nobody to notify: no subscriber contact and no abuse address or webhook for its organisation"
    )]
    NoRecipient(i64),
    #[error("case {id} already had {max} notices this episode, the most the policy allows")]
    NoticesExhausted { id: i64, max: u32 },
    #[error("case {id} is already at the top escalation level ({level})")]
    AtTopLevel { id: i64, level: u8 },
    #[error("invalid policy: {0}")]
    Policy(String),
}

pub type Result<T, E = CaseError> = std::result::Result<T, E>;

/// `[cases]` and `[bar]` of `botwatch.toml`, for callers that read the file as a whole.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct CasesConfig {
    pub cases: Policy,
    pub bar: Bar,
}
