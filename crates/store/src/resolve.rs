//! Observation resolution, shared by the backends: which observation each event of a
//! report joins or opens, decided in memory per report (the stored observations a batch's
//! keys may join are loaded once, by the backend's own query).

use crate::encode::EncodedEvent;
use crate::{ObservationRow, Result};
use botwatch_model::ClassificationType;
use std::collections::HashMap;

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ObsKey {
    pub(crate) subject: String,
    pub(crate) ty: &'static str,
    pub(crate) family: String,
}

pub(crate) struct ObsState {
    pub(crate) id: i64,
    pub(crate) key: ObsKey,
    pub(crate) ip: Option<[u8; 16]>,
    pub(crate) asn: Option<u32>,
    pub(crate) cc: Option<String>,
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) count: i64,
    pub(crate) sources: Vec<(String, f64)>,
    /// Strictest TLP rank of its events.
    pub(crate) tlp: Option<u8>,
    pub(crate) added: i64,
    pub(crate) existing: bool,
}

impl ObsState {
    /// A stored observation as loaded for [`Obs::preload`]; `None` for a type this build
    /// does not know.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn stored(
        id: i64,
        subject: String,
        ty: &str,
        family: String,
        ip: Option<Vec<u8>>,
        asn: Option<u32>,
        cc: Option<String>,
        (first, last, count): (i64, i64, i64),
        sources_json: &str,
        tlp: Option<u8>,
    ) -> Option<ObsState> {
        let ty = ClassificationType::from_name(ty)?;
        let sources: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(sources_json).unwrap_or_default();
        Some(ObsState {
            id,
            key: ObsKey { subject, ty: ty.as_str(), family },
            ip: ip.and_then(|b| b.try_into().ok()),
            asn,
            cc,
            first,
            last,
            count,
            sources: sources.into_iter().map(|(k, v)| (k, v.as_f64().unwrap_or(100.0))).collect(),
            tlp,
            added: 0,
            existing: true,
        })
    }

    pub(crate) fn into_row(self) -> ObservationRow {
        ObservationRow {
            id: self.id,
            subject: self.key.subject,
            ty: self.key.ty,
            family: self.key.family,
            ip: self.ip,
            asn: self.asn,
            cc: self.cc,
            first: self.first,
            last: self.last,
            count: self.count,
            sources: self.sources,
            tlp: self.tlp,
            added: self.added,
            existing: self.existing,
        }
    }
}

/// Observations touched by the report being written, resolved in memory.
///
/// Keyed by a 128-bit hash of (subject, type, family), computed once per event: hashing the
/// key strings for each of the three or four map look-ups an event needed was the
/// resolver's largest cost. At 2^-128 per pair a collision is not a practical concern.
pub(crate) struct Obs {
    pub(crate) window_us: i64,
    pub(crate) next_obs_id: i64,
    /// Per key: the latest observation (index into `touched`), or known to have no stored
    /// observation in reach.
    keys: HashMap<u128, Slot, std::hash::BuildHasherDefault<KeyHasher>>,
    pub(crate) touched: Vec<ObsState>,
}

#[derive(Clone, Copy)]
enum Slot {
    Latest(usize),
    Absent,
}

/// The keys are already uniform hashes: use their low bits as they are.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

pub(crate) fn key_hash(subject: &str, ty: &str, family: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(subject.as_bytes());
    h.update(&[0xff]);
    h.update(ty.as_bytes());
    h.update(&[0xff]);
    h.update(family.as_bytes());
    h.digest128()
}

/// The key of each event that has a subject (aligned with the events), and its time.
pub(crate) fn event_keys(events: &[EncodedEvent]) -> Vec<Option<(u128, i64)>> {
    events
        .iter()
        .map(|e| {
            let s = e.subject.as_deref()?;
            Some((key_hash(s, e.ty, e.family.as_deref().unwrap_or("")), e.time))
        })
        .collect()
}

impl Obs {
    pub(crate) fn new(window_us: i64, next_obs_id: i64) -> Obs {
        Obs { window_us, next_obs_id, keys: Default::default(), touched: Vec::new() }
    }

    /// Loads the latest stored observation for every key of the batch not seen yet in this
    /// report, in chunks of `IN (…)` queries.
    ///
    /// `load(subjects, floor)` returns the stored observations of these subjects last seen
    /// at or after `floor` (any order; the latest per key wins).
    pub(crate) fn preload(
        &mut self,
        events: &[EncodedEvent],
        keys: &[Option<(u128, i64)>],
        mut load: impl FnMut(&[&str], i64) -> Result<Vec<ObsState>>,
    ) -> Result<()> {
        let mut want: Vec<&str> = Vec::new();
        let mut wanted: Vec<u128> = Vec::new();
        let mut min_t = i64::MAX;
        let mut seen = std::collections::HashSet::new();
        for (e, k) in events.iter().zip(keys) {
            let (Some((h, t)), Some(subject)) = (k, e.subject.as_deref()) else { continue };
            if self.keys.contains_key(h) {
                continue;
            }
            min_t = min_t.min(*t);
            wanted.push(*h);
            if seen.insert(subject) {
                want.push(subject);
            }
        }
        if want.is_empty() {
            return Ok(());
        }
        let floor = min_t.saturating_sub(self.window_us);
        let mut found: HashMap<u128, ObsState> = HashMap::new();
        for chunk in want.chunks(500) {
            for state in load(chunk, floor)? {
                let h = key_hash(&state.key.subject, state.key.ty, &state.key.family);
                match found.get(&h) {
                    Some(old) if old.last >= state.last => {}
                    _ => {
                        found.insert(h, state);
                    }
                }
            }
        }
        for h in wanted {
            if self.keys.contains_key(&h) {
                continue;
            }
            match found.remove(&h) {
                Some(state) => {
                    self.keys.insert(h, Slot::Latest(self.touched.len()));
                    self.touched.push(state);
                }
                None => {
                    self.keys.insert(h, Slot::Absent);
                }
            }
        }
        Ok(())
    }

    fn in_window(&self, i: usize, t: i64) -> bool {
        let o = &self.touched[i];
        t >= o.first.saturating_sub(self.window_us) && t <= o.last.saturating_add(self.window_us)
    }

    /// The id [`Obs::observe`] would give this sighting, without recording it.
    pub(crate) fn peek(&self, key: u128, t: i64) -> i64 {
        match self.keys.get(&key) {
            Some(&Slot::Latest(i)) if self.in_window(i, t) => self.touched[i].id,
            _ => self.next_obs_id,
        }
    }

    /// The observation this event joins (merging) or opens; `(index, merged)`.
    pub(crate) fn observe(&mut self, key: u128, e: &EncodedEvent, t: i64) -> (usize, bool) {
        let feed = e.feed.as_str();
        if let Some(&Slot::Latest(i)) = self.keys.get(&key)
            && self.in_window(i, t)
        {
            let o = &mut self.touched[i];
            o.first = o.first.min(t);
            o.last = o.last.max(t);
            o.count += 1;
            o.added += 1;
            if !o.sources.iter().any(|(f, _)| f == feed) {
                o.sources.push((feed.to_string(), e.accuracy));
            }
            if o.asn.is_none() {
                o.asn = e.asn;
            }
            if o.cc.is_none() {
                o.cc = e.cc.as_ref().map(|c| c.to_string());
            }
            o.tlp = o.tlp.max(e.tlp);
            return (i, true);
        }
        let id = self.next_obs_id;
        self.next_obs_id += 1;
        self.touched.push(ObsState {
            id,
            key: ObsKey {
                subject: e.subject.clone().unwrap_or_default(),
                ty: e.ty,
                family: e.family.as_deref().unwrap_or("").to_string(),
            },
            ip: e.ip,
            asn: e.asn,
            cc: e.cc.as_ref().map(|c| c.to_string()),
            first: t,
            last: t,
            count: 1,
            sources: vec![(feed.to_string(), e.accuracy)],
            tlp: e.tlp,
            added: 1,
            existing: false,
        });
        let i = self.touched.len() - 1;
        self.keys.insert(key, Slot::Latest(i));
        (i, false)
    }
}

/// `{"feed": accuracy, …}` without building a JSON tree per observation.
pub(crate) fn sources_json(sources: &[(String, f64)], out: &mut String) {
    use std::fmt::Write;
    out.push('{');
    for (i, (f, a)) in sources.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String(f.clone()).to_string());
        let _ = write!(out, ":{}", serde_json::Value::from(*a));
    }
    out.push('}');
}
