//! Placeholder while the schema-driven parser is written (owned by the lead, not the helper).

use crate::registry::Provider;

pub const PROVIDER: Provider = Provider { name: "shadowserver", feeds: Vec::new, detect: |_, _| None };
