//! botwatch's event model.
//!
//! Everything botwatch ingests becomes an [`Event`] named in IntelMQ's harmonised vocabulary
//! (`source.ip`, `classification.type`, `malware.name`, `extra.*`, …). Parsers emit events and
//! [`Reject`]s into a [`Sink`]; nothing here does I/O.
//!
//! ```
//! use botwatch_model::{Event, FeedInfo, Slot, ClassificationType, Timestamp};
//! use std::sync::Arc;
//! let feed = Arc::new(FeedInfo::new("abusech_feodo", "Feodo Tracker", "abuse.ch", 95.0));
//! let mut e = Event::new(feed, ClassificationType::C2Server, Timestamp::from_secs(0));
//! e.set_str(Slot::for_key("source.ip"), "192.0.2.7").unwrap();
//! assert_eq!(e.to_intelmq(false)["classification.taxonomy"], "malicious-code");
//! ```

pub mod case;
pub mod event;
pub mod family;
pub mod intelmq;
pub mod intern;
pub mod lease;
pub mod secret;
pub mod taxonomy;
pub mod time;

pub use case::{Case, CaseState, CloseReason};
pub use event::{
    Collected, Endpoint, EndpointField, Event, FeedInfo, FieldError, Reject, Side, Sink, Slot, Text, Value,
    Warning, WarningKind, parse_asn, parse_ip, parse_network, valid_fqdn,
};
pub use family::FamilyTable;
pub use intern::intern;
pub use lease::LeaseRecord;
pub use secret::secret;
pub use taxonomy::{ClassificationType, Tlp};
pub use time::{Clock, ManualClock, SystemClock, Timestamp, parse_timestamp};
