//! The flows the flow detectors read, kept once for all of them.
//!
//! The flow detectors (beacon, scan, upload, spam, flood) all need every flow of a client
//! until `find` (each picks the ones it reads: outbound series, attempts, uploads, mail,
//! floods). The beacon and scan detectors each used to keep their own copy (a series map keyed by client, destination and
//! port; a list of attempts per client) and count the capture's vantage itself, so one flow
//! cost two map probes into tables of a million entries and ~220 bytes. Here a flow costs
//! one probe into the client table, one into the destination table (both small next to the
//! flows: a network has far fewer clients and destinations than flows) and 24 bytes pushed
//! onto the client's list; the detectors group the lists at `finish`.

use super::scope::{Vantage, never_a_host};
use crate::record::FlowRecord;
use serde::{Deserialize, Serialize};
// foldhash: the per-flow map lookups are the cost here (SipHash was a third of it).
use foldhash::{HashMap, HashMapExt};
use std::net::IpAddr;

/// Memory bounds of the flow detectors (`[sensor.flows]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowBounds {
    /// Clients tracked; flows of clients past this many are dropped and counted.
    pub max_clients: usize,
    /// Flows kept per client, all kinds together (a NAT gateway's share is bounded, not the
    /// sensor's memory); past it, none of the client's later flows is analysed, its beacons
    /// included.
    pub max_flows_per_client: usize,
    /// Flows kept in all: 24 bytes each, up to twice that while the lists grow.
    pub max_flows: usize,
}

impl Default for FlowBounds {
    fn default() -> Self {
        FlowBounds { max_clients: 1_000_000, max_flows_per_client: 100_000, max_flows: 20_000_000 }
    }
}

/// One flow as the detectors need it. 24 bytes: the start, a byte count saturating at 4 GiB,
/// the destination's number in [`FlowMemory::dest`], ports, protocol, three yes/no/unknown
/// facts packed in a byte, the originator's share of the bytes in 254ths and the duration's
/// power of two (two bytes that fitted in the padding: the upload and flood detectors need
/// each direction's bytes and a flow's rate only roughly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub t: i64,
    pub bytes: u32,
    pub dst: u32,
    pub sport: u16,
    pub port: u16,
    pub proto: u8,
    flags: u8,
    /// The originator's share of `bytes` in 254ths; [`UNKNOWN_SHARE`] for one-way records.
    share: u8,
    /// 0 for a flow shorter than a second, else 1 + ⌊log2(seconds)⌋.
    duration_log2: u8,
}

const UNKNOWN_SHARE: u8 = u8::MAX;

fn share(f: &FlowRecord) -> u8 {
    match f.resp_bytes {
        None => UNKNOWN_SHARE,
        Some(_) if f.bytes == 0 => 0,
        Some(r) => {
            let sent = f.bytes.saturating_sub(r);
            ((sent as f64 / f.bytes as f64) * 254.0).round() as u8
        }
    }
}

fn tri(v: Option<bool>) -> u8 {
    match v {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    }
}

fn untri(v: u8) -> Option<bool> {
    match v & 3 {
        1 => Some(false),
        2 => Some(true),
        _ => None,
    }
}

impl Flow {
    /// Whether the attempt was answered, when the record says.
    pub fn answered(&self) -> Option<bool> {
        untri(self.flags)
    }
    /// The record's word on the client's end (Zeek `local_orig`).
    pub fn local_orig(&self) -> Option<bool> {
        untri(self.flags >> 2)
    }
    /// The record's word on the destination (Zeek `local_resp`).
    pub fn local_resp(&self) -> Option<bool> {
        untri(self.flags >> 4)
    }
    /// The longest the flow may have lasted, in seconds: under a second, or under the power of
    /// two above its duration.
    pub fn max_duration_secs(&self) -> f64 {
        if self.duration_log2 == 0 { 1.0 } else { (2.0f64).powi(i32::from(self.duration_log2)) }
    }

    /// Bytes (sent by the originator, sent back), within half a 254th of `bytes`, where the
    /// record gave both directions.
    pub fn sent_received(&self) -> Option<(u64, u64)> {
        if self.share == UNKNOWN_SHARE {
            return None;
        }
        let total = u64::from(self.bytes);
        let sent = (total * u64::from(self.share) + 127) / 254;
        Some((sent, total - sent))
    }
}

/// One client's flows, in the order they came.
#[derive(Debug)]
pub struct ClientFlows {
    pub ip: IpAddr,
    pub flows: Vec<Flow>,
}

/// What the flow detectors keep between `observe` and `finish`.
#[derive(Debug)]
pub struct FlowMemory {
    bounds: FlowBounds,
    index: HashMap<IpAddr, u32>,
    clients: Vec<ClientFlows>,
    dests: HashMap<IpAddr, u32>,
    dest_ips: Vec<IpAddr>,
    vantage: Vantage,
    kept: usize,
    dropped: u64,
}

impl Default for FlowMemory {
    fn default() -> Self {
        FlowMemory::new(FlowBounds::default())
    }
}

impl FlowMemory {
    pub fn new(bounds: FlowBounds) -> Self {
        FlowMemory {
            bounds,
            index: HashMap::new(),
            clients: Vec::new(),
            dests: HashMap::new(),
            dest_ips: Vec::new(),
            vantage: Vantage::default(),
            kept: 0,
            dropped: 0,
        }
    }

    /// Keeps a flow whose ends are hosts; flows over the bounds are dropped and counted.
    pub fn observe(&mut self, f: &FlowRecord) {
        if never_a_host(f.src) || never_a_host(f.dst) {
            return;
        }
        self.vantage.observe(f);
        // Destinations are numbered in a u32: never more of them than flows kept.
        if self.kept >= self.bounds.max_flows.min(u32::MAX as usize) {
            self.dropped += 1;
            return;
        }
        let c = match self.index.get(&f.src) {
            Some(&c) => c as usize,
            None if self.clients.len() < self.bounds.max_clients.min(u32::MAX as usize) => {
                self.index.insert(f.src, self.clients.len() as u32);
                self.clients.push(ClientFlows { ip: f.src, flows: Vec::new() });
                self.clients.len() - 1
            }
            None => {
                self.dropped += 1;
                return;
            }
        };
        if self.clients[c].flows.len() >= self.bounds.max_flows_per_client {
            self.dropped += 1;
            return;
        }
        let dst = match self.dests.get(&f.dst) {
            Some(&d) => d,
            None => {
                let d = self.dest_ips.len() as u32;
                self.dests.insert(f.dst, d);
                self.dest_ips.push(f.dst);
                d
            }
        };
        self.clients[c].flows.push(Flow {
            t: f.start.0,
            bytes: f.bytes.min(u32::MAX as u64) as u32,
            dst,
            sport: f.src_port,
            port: f.dst_port,
            proto: f.proto,
            flags: tri(f.answered) | tri(f.local_orig) << 2 | tri(f.local_resp) << 4,
            share: share(f),
            duration_log2: {
                let secs = (f.end.0.saturating_sub(f.start.0) / 1_000_000).max(0) as u64;
                if secs == 0 { 0 } else { (1 + secs.ilog2()) as u8 }
            },
        });
        self.kept += 1;
    }

    /// Flows over the bounds, dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Flows kept.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// The address behind a [`Flow::dst`].
    pub fn dest(&self, d: u32) -> IpAddr {
        self.dest_ips[d as usize]
    }

    pub fn vantage(&self) -> &Vantage {
        &self.vantage
    }

    pub fn clients(&self) -> &[ClientFlows] {
        &self.clients
    }

    /// The flows a host originated, if it originated any that were kept.
    pub fn flows_of(&self, ip: IpAddr) -> Option<&ClientFlows> {
        self.index.get(&ip).map(|&c| &self.clients[c as usize])
    }

    /// A destination's number, if any flow kept went to it.
    pub fn dest_number(&self, ip: IpAddr) -> Option<u32> {
        self.dests.get(&ip).copied()
    }

    pub(crate) fn clients_mut(&mut self) -> &mut [ClientFlows] {
        &mut self.clients
    }

    /// Internal state held now: (clients, bytes), the bytes counted from the containers'
    /// capacities, so an operator can size the bounds.
    pub fn state(&self) -> (usize, usize) {
        let flows: usize = self.clients.iter().map(|c| c.flows.capacity()).sum();
        let bytes = self.index.capacity() * (std::mem::size_of::<(IpAddr, u32)>() + 1)
            + self.clients.capacity() * std::mem::size_of::<ClientFlows>()
            + flows * std::mem::size_of::<Flow>()
            + self.dests.capacity() * (std::mem::size_of::<(IpAddr, u32)>() + 1)
            + self.dest_ips.capacity() * std::mem::size_of::<IpAddr>()
            + self.vantage.bytes();
        (self.clients.len(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use botwatch_model::Timestamp;

    #[test]
    fn a_flow_is_24_bytes_and_keeps_what_the_record_said() {
        assert_eq!(std::mem::size_of::<Flow>(), 24);
        let mut m = FlowMemory::new(FlowBounds { max_clients: 1, max_flows_per_client: 2, max_flows: 10 });
        let f = |src: &str, answered, lo, lr| FlowRecord {
            start: Timestamp(5),
            end: Timestamp(5),
            src: src.parse().unwrap(),
            dst: "203.0.113.9".parse().unwrap(),
            src_port: 40000,
            dst_port: 443,
            proto: 6,
            packets: 1,
            bytes: 1 << 40,
            resp_bytes: None,
            exporter: None,
            answered,
            local_orig: lo,
            local_resp: lr,
        };
        m.observe(&f("10.0.0.5", Some(false), Some(true), None));
        m.observe(&f("10.0.0.5", None, None, Some(false)));
        // Over the per-client bound, then over the client bound; never a host: not kept at all.
        m.observe(&f("10.0.0.5", None, None, None));
        m.observe(&f("10.0.0.6", None, None, None));
        m.observe(&f("224.0.0.1", None, None, None));
        assert_eq!((m.kept(), m.dropped()), (2, 2));
        let fl = &m.clients()[0].flows;
        assert_eq!(
            (fl[0].answered(), fl[0].local_orig(), fl[0].local_resp()),
            (Some(false), Some(true), None)
        );
        assert_eq!((fl[1].answered(), fl[1].local_orig(), fl[1].local_resp()), (None, None, Some(false)));
        assert_eq!(fl[0].bytes, u32::MAX);
        assert_eq!(m.dest(fl[0].dst).to_string(), "203.0.113.9");
    }
}
