//! Pairs queries with responses by (client, client port, DNS id) for dnstap and pcap.
//!
//! A query waits for its response at most [`WINDOW_US`] of *stream* time, then goes out
//! unanswered; memory stays bounded by the query rate times the window, whatever the input
//! length, which matters for the socket receiver.

use super::wire::Summary;
use super::{DnsSink, Stats};
use crate::record::DnsRecord;
use botwatch_model::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Resolvers give up on upstreams well within this; a later response is another exchange.
pub(crate) const WINDOW_US: i64 = 30_000_000;
/// Hard cap on waiting queries, whatever the timestamps say (a stream with a frozen clock).
const MAX_PENDING: usize = 1 << 18;

type Key = (IpAddr, u16, u16);

#[derive(Default)]
pub(crate) struct Pairer {
    pending: HashMap<Key, (DnsRecord, u64)>,
    order: VecDeque<(Key, u64, Timestamp)>,
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
        let rec = s.into_record(time, client, port);
        // Same client, port and id still waiting: the client retried or reused the id;
        // the earlier one will get no response of its own.
        if let Some((old, _)) = self.pending.insert(key, (rec, self.seq)) {
            stats.unanswered += 1;
            out.record(old);
        }
        self.order.push_back((key, self.seq, time));
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
        match self.pending.remove(&key) {
            Some((mut q, _)) if q.qname == s.qname && q.qtype == s.qtype => {
                stats.paired += 1;
                q.rcode = Some(s.rcode);
                q.answers = s.answers;
                out.record(q);
            }
            other => {
                if let Some(v) = other {
                    // Same key, different question: not this query's response.
                    self.pending.insert(key, v);
                }
                stats.unmatched_responses += 1;
                out.record(s.into_record(time, client, port));
            }
        }
        self.expire(time, out, stats);
    }

    /// Sends out queries older than the window before `now`.
    fn expire(&mut self, now: Timestamp, out: &mut dyn DnsSink, stats: &mut Stats) {
        let limit = now.0.saturating_sub(WINDOW_US);
        while let Some(&(key, seq, t)) = self.order.front() {
            if t.0 >= limit && self.pending.len() <= MAX_PENDING {
                break;
            }
            self.order.pop_front();
            if self.pending.get(&key).is_some_and(|(_, s)| *s == seq)
                && let Some((rec, _)) = self.pending.remove(&key)
            {
                stats.unanswered += 1;
                out.record(rec);
            }
        }
    }

    /// End of stream: every waiting query goes out unanswered.
    pub(crate) fn finish(&mut self, out: &mut dyn DnsSink, stats: &mut Stats) {
        while let Some((key, seq, _)) = self.order.pop_front() {
            if self.pending.get(&key).is_some_and(|(_, s)| *s == seq)
                && let Some((rec, _)) = self.pending.remove(&key)
            {
                stats.unanswered += 1;
                out.record(rec);
            }
        }
        self.pending.clear();
    }
}
