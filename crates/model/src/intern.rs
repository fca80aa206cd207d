//! Interned attribute keys: a report has a few dozen distinct keys and millions of values,
//! so keys are `&'static str` resolved once per column. The set is bounded by the keys the
//! schemas and feeds name, plus drift columns.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

static KEYS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();

/// Returns the one `'static` copy of `s`.
pub fn intern(s: &str) -> &'static str {
    let set = KEYS.get_or_init(|| Mutex::new(HashSet::new()));
    // A poisoned lock only means another thread panicked mid-insert; the set is still valid.
    let mut g = set.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = g.get(s) {
        return k;
    }
    let k: &'static str = Box::leak(s.to_owned().into_boxed_str());
    g.insert(k);
    k
}
