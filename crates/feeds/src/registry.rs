//! Every supported feed, in one explicit list of providers (alphabetical; one line each),
//! and format detection for reports that arrive without a feed id.

use crate::{FeedError, FeedSpec};
use std::sync::OnceLock;

/// A feed publisher: the feeds it offers and how to recognise its reports.
pub struct Provider {
    pub name: &'static str,
    pub feeds: fn() -> Vec<FeedSpec>,
    /// Given the report's file name (if any) and its first bytes (at most [`HEAD_LEN`]),
    /// the feed id it belongs to.
    pub detect: fn(name: Option<&str>, head: &[u8]) -> Option<String>,
}

/// How much of a report detection looks at.
pub const HEAD_LEN: usize = 16 * 1024;

/// Shadowserver comes first in detection (its file names are unambiguous), generic last.
pub const PROVIDERS: &[Provider] = &[
    crate::shadowserver::PROVIDER,
    crate::abusech::PROVIDER,
    crate::bambenek::PROVIDER,
    crate::blocklistde::PROVIDER,
    crate::cymru::PROVIDER,
    crate::dataplane::PROVIDER,
    crate::dshield::PROVIDER,
    crate::microsoft::PROVIDER,
    crate::misp::PROVIDER,
    crate::spamhaus::PROVIDER,
    crate::stix::PROVIDER,
    crate::xarf::PROVIDER,
    crate::generic::PROVIDER,
];

/// The built-in feeds plus any defined in configuration (generic CSV / list mappings).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    feeds: Vec<FeedSpec>,
}

impl Registry {
    /// All built-in feeds.
    pub fn builtin() -> Registry {
        Registry { feeds: builtin().to_vec() }
    }

    /// Adds (or replaces) a feed, e.g. a generic CSV mapping from config.
    pub fn add(&mut self, spec: FeedSpec) {
        self.feeds.retain(|f| f.id != spec.id);
        self.feeds.push(spec);
    }

    pub fn all(&self) -> &[FeedSpec] {
        &self.feeds
    }

    pub fn get(&self, id: &str) -> Result<&FeedSpec, FeedError> {
        self.feeds.iter().find(|f| f.id == id).ok_or_else(|| FeedError::UnknownFeed(id.to_string()))
    }

    /// Picks the feed for a report from its file name and first bytes.
    pub fn detect(&self, name: Option<&str>, data: &[u8]) -> Result<&FeedSpec, FeedError> {
        let head = &data[..data.len().min(HEAD_LEN)];
        let base = name.map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n));
        for p in PROVIDERS {
            if let Some(id) = (p.detect)(base, head)
                && let Ok(spec) = self.get(&id)
            {
                return Ok(spec);
            }
        }
        Err(FeedError::Undetected(name.unwrap_or("<stdin>").to_string()))
    }
}

fn builtin() -> &'static [FeedSpec] {
    static ALL: OnceLock<Vec<FeedSpec>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut v: Vec<FeedSpec> = PROVIDERS.iter().flat_map(|p| (p.feeds)()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    })
}

/// A built-in feed by id.
pub fn get(id: &str) -> Result<FeedSpec, FeedError> {
    builtin().iter().find(|f| f.id == id).cloned().ok_or_else(|| FeedError::UnknownFeed(id.to_string()))
}

/// All built-in feeds, sorted by id.
pub fn all() -> &'static [FeedSpec] {
    builtin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_snake_case_and_documented() {
        let all = all();
        let mut seen = std::collections::HashSet::new();
        for f in all {
            assert!(seen.insert(&f.id), "duplicate feed id {}", f.id);
            assert!(
                f.id.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
                "{} is not snake_case",
                f.id
            );
            assert!(f.documentation.starts_with("http"), "{} has no documentation link", f.id);
            assert!((0.0..=100.0).contains(&f.accuracy));
        }
    }
}
