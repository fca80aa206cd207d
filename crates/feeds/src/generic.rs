//! TODO(helper): parsers for this provider.

use crate::registry::Provider;

pub const PROVIDER: Provider = Provider { name: "generic", feeds: Vec::new, detect: |_, _| None };
