//! Pairs queries with responses by (client, client port, DNS id) for dnstap and pcap.
//!
//! A query waits for its response at most [`WINDOW_US`] of *stream* time, then goes out
//! unanswered; memory stays bounded by the query rate times the window, whatever the input
//! length, which matters for the socket receiver.
//!
//! Layout, for speed: waiting records sit in a slab whose freed entries are reused first,
//! and the index is a table of slab indices only (4 bytes an entry). A capture's queries
//! mostly expire unanswered; each new one then takes the slab entry the query expiring
//! just before it gave up, so the slab is walked in the same order every window, and the
//! index stays small enough to stay in the CPU cache beside the indicator matcher's tables.
//! Expiry finds its index entry by slab index, without reading the record. (Whole records
//! in a `HashMap` made its look-ups a third of a capture's decode time.)

use super::wire::Summary;
use super::{DnsSink, Stats};
use crate::record::DnsRecord;
use botwatch_model::Timestamp;
use hashbrown::{HashTable, hash_table};
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::IpAddr;

/// Resolvers give up on upstreams well within this; a later response is another exchange.
pub(crate) const WINDOW_US: i64 = 30_000_000;
/// Hard cap on waiting queries, whatever the timestamps say (a stream with a frozen clock).
const MAX_PENDING: usize = 1 << 18;

type Key = (IpAddr, u16, u16);

struct Waiting {
    /// Client address, client port (0 if unknown), DNS id.
    key: Key,
    /// Tells this query from a later one that reused the slab entry.
    seq: u64,
    rec: DnsRecord,
}

#[derive(Default)]
pub(crate) struct Pairer {
    /// Slab indices of waiting queries, hashed by key. foldhash is seeded per process, so
    /// clients choosing ports and ids cannot aim at collisions.
    pending: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    slab: Vec<Option<Waiting>>,
    free: Vec<u32>,
    /// Queries in arrival order: key hash, sequence number, slab index, time.
    order: VecDeque<(u64, u64, u32, Timestamp)>,
    seq: u64,
}

impl Pairer {
    pub(crate) fn query(
        &mut self,
        s: Summary,
        time: Timestamp,
        client: IpAddr,
        port: Option<u16>,
        out: &mut dyn DnsSink,
        stats: &mut Stats,
    ) {
        stats.queries += 1;
        self.expire(time, out, stats);
        let key = (client, port.unwrap_or(0), s.id);
        self.seq += 1;
        let seq = self.seq;
        let idx = self.store(Waiting { key, seq, rec: s.into_record(time, client, port) });
        let hash = self.hasher.hash_one(key);
        let (slab, hasher) = (&self.slab, &self.hasher);
        let displaced =
            match self.pending.entry(hash, |&i| key_at(slab, i) == Some(key), |&i| rehash(slab, hasher, i)) {
                hash_table::Entry::Occupied(mut e) => Some(std::mem::replace(e.get_mut(), idx)),
                hash_table::Entry::Vacant(e) => {
                    e.insert(idx);
                    None
                }
            };
        // Same client, port and id still waiting: the client retried or reused the id;
        // the earlier one will get no response of its own.
        if let Some(w) = displaced.and_then(|old| self.take(old)) {
            stats.unanswered += 1;
            out.record(w.rec);
        }
        self.order.push_back((hash, seq, idx, time));
        if self.pending.len() > MAX_PENDING {
            self.expire(time, out, stats);
        }
    }

    /// `query_time` is when the client asked, when the source says (dnstap CR messages
    /// often carry it); otherwise the response time stands in.
    pub(crate) fn response(
        &mut self,
        s: Summary,
        time: Timestamp,
        client: IpAddr,
        port: Option<u16>,
        out: &mut dyn DnsSink,
        stats: &mut Stats,
    ) {
        stats.responses += 1;
        let key = (client, port.unwrap_or(0), s.id);
        let slab = &self.slab;
        let found = self.pending.find_entry(self.hasher.hash_one(key), |&i| key_at(slab, i) == Some(key));
        // Same key, different question: not this query's response.
        let same_question = found.as_ref().is_ok_and(|e| {
            slab.get(*e.get() as usize)
                .and_then(Option::as_ref)
                .is_some_and(|w| w.rec.qname == s.qname && w.rec.qtype == s.qtype)
        });
        let waiting = match found {
            Ok(e) if same_question => {
                let idx = e.remove().0;
                self.take(idx)
            }
            _ => None,
        };
        match waiting {
            Some(Waiting { rec: mut q, .. }) => {
                stats.paired += 1;
                q.rcode = Some(s.rcode);
                q.answers = s.answers;
                out.record(q);
            }
            None => {
                stats.unmatched_responses += 1;
                out.record(s.into_record(time, client, port));
            }
        }
        self.expire(time, out, stats);
    }

    fn store(&mut self, w: Waiting) -> u32 {
        if let Some(i) = self.free.pop()
            && let Some(slot) = self.slab.get_mut(i as usize)
        {
            *slot = Some(w);
            return i;
        }
        self.slab.push(Some(w));
        // At most MAX_PENDING + 2 entries are ever taken at once.
        (self.slab.len() - 1) as u32
    }

    fn take(&mut self, idx: u32) -> Option<Waiting> {
        let w = self.slab.get_mut(idx as usize)?.take();
        if w.is_some() {
            self.free.push(idx);
        }
        w
    }

    /// Sends out queries older than the window before `now`.
    fn expire(&mut self, now: Timestamp, out: &mut dyn DnsSink, stats: &mut Stats) {
        let limit = now.0.saturating_sub(WINDOW_US);
        while let Some(&(hash, seq, idx, t)) = self.order.front() {
            if t.0 >= limit && self.pending.len() <= MAX_PENDING {
                break;
            }
            self.order.pop_front();
            self.send_unanswered(hash, seq, idx, out, stats);
        }
    }

    /// The query `seq` goes out unanswered if it is still waiting (not answered, and not
    /// displaced by a later query under the same key).
    fn send_unanswered(&mut self, hash: u64, seq: u64, idx: u32, out: &mut dyn DnsSink, stats: &mut Stats) {
        let waiting = self.slab.get(idx as usize).and_then(Option::as_ref).is_some_and(|w| w.seq == seq);
        if !waiting {
            return;
        }
        if let Ok(e) = self.pending.find_entry(hash, |&i| i == idx) {
            e.remove();
        }
        if let Some(w) = self.take(idx) {
            stats.unanswered += 1;
            out.record(w.rec);
        }
    }

    /// End of stream: every waiting query goes out unanswered.
    pub(crate) fn finish(&mut self, out: &mut dyn DnsSink, stats: &mut Stats) {
        while let Some((hash, seq, idx, _)) = self.order.pop_front() {
            self.send_unanswered(hash, seq, idx, out, stats);
        }
        self.pending.clear();
    }
}

fn key_at(slab: &[Option<Waiting>], idx: u32) -> Option<Key> {
    slab.get(idx as usize)?.as_ref().map(|w| w.key)
}

/// The hash of an indexed entry when the table grows: every indexed entry is in the slab.
fn rehash(slab: &[Option<Waiting>], hasher: &foldhash::fast::RandomState, idx: u32) -> u64 {
    key_at(slab, idx).map_or(0, |k| hasher.hash_one(k))
}
