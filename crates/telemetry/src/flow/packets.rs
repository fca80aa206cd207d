//! Flows from the packets of a capture: what a capture taken at a client or a network tap
//! holds, where there are no NetFlow exports to read.
//!
//! Packets are grouped into bidirectional flows by protocol and both ends. The originator is
//! the sender of a TCP SYN (without ACK), otherwise of the first packet seen. A TCP flow ends
//! at the next SYN on the same ends after it closed (FIN or RST) or after `TCP_IDLE`; UDP and
//! ICMP flows after `OTHER_IDLE` without a packet. A flow is *answered* when the responder
//! sent a SYN-ACK (TCP) or any packet (UDP, ICMP), and refused when a TCP responder only
//! reset it. Times come from the capture, so the flows are those a flow exporter with the
//! same timeouts would have sent.

use crate::capture::Frame;
use crate::record::FlowRecord;
use botwatch_model::Timestamp;
use etherparse::{NetSlice, TransportSlice};
use pcap_parser::Linktype;
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;

const TCP_IDLE_US: i64 = 300 * 1_000_000;
const OTHER_IDLE_US: i64 = 60 * 1_000_000;
/// Open flows kept at most; past it the least recently active are finished early.
const MAX_OPEN: usize = 500_000;

/// What reading a capture's packets saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PacketStats {
    pub frames: u64,
    /// Frames that carried IPv4/IPv6 with TCP, UDP or ICMP.
    pub ip_packets: u64,
    pub flows: u64,
    /// The capture ended inside a frame or block.
    pub truncated: bool,
}

/// Both ends, the lower first, so either direction finds the flow.
type Key = (u8, IpAddr, u16, IpAddr, u16);

struct Open {
    rec: FlowRecord,
    last: Timestamp,
    closed: bool,
    /// The responder sent something (TCP: a SYN-ACK or data; others: anything).
    answered: bool,
    /// The responder's only word was a reset.
    reset: bool,
    /// Began with a SYN from the originator (the handshake was seen).
    syn: bool,
}

impl Open {
    fn finish(mut self) -> FlowRecord {
        self.rec.end = self.last;
        self.rec.answered = match self.rec.proto {
            6 if self.syn => Some(self.answered && !self.reset),
            6 => self.answered.then_some(true),
            _ => Some(self.answered),
        };
        self.rec
    }
}

/// One packet, as the flow table needs it.
struct Pkt {
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    bytes: u64,
    syn: bool,
    ack: bool,
    fin_rst: bool,
    rst: bool,
}

fn slice(lt: Linktype, frame: &[u8]) -> Option<Pkt> {
    let p = crate::capture::slice(lt, frame)?;
    let (src, dst, bytes): (IpAddr, IpAddr, u64) = match p.net.as_ref()? {
        NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
            u64::from(v4.header().total_len()),
        ),
        NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
            u64::from(v6.header().payload_length()) + 40,
        ),
        _ => return None,
    };
    let mut k = Pkt {
        proto: 0,
        src,
        dst,
        sport: 0,
        dport: 0,
        bytes,
        syn: false,
        ack: false,
        fin_rst: false,
        rst: false,
    };
    match p.transport.as_ref()? {
        TransportSlice::Tcp(t) => {
            k.proto = 6;
            (k.sport, k.dport) = (t.source_port(), t.destination_port());
            (k.syn, k.ack, k.rst) = (t.syn(), t.ack(), t.rst());
            k.fin_rst = t.fin() || t.rst();
        }
        TransportSlice::Udp(u) => {
            k.proto = 17;
            (k.sport, k.dport) = (u.source_port(), u.destination_port());
        }
        // ICMP type and code stand where the destination port would, as NetFlow v5 and
        // nfdump put them (`FlowRecord::dst_port`).
        TransportSlice::Icmpv4(i) => {
            k.proto = 1;
            k.dport = u16::from_be_bytes([i.type_u8(), i.code_u8()]);
        }
        TransportSlice::Icmpv6(i) => {
            k.proto = 58;
            k.dport = u16::from_be_bytes([i.type_u8(), i.code_u8()]);
        }
        // IGMP and the rest: group membership, never a client's conversation.
        _ => return None,
    }
    Some(k)
}

struct Table {
    open: HashMap<Key, Open>,
    out: Vec<FlowRecord>,
    stats: PacketStats,
}

impl Table {
    fn key(p: &Pkt) -> Key {
        // ICMP: one flow per pair of hosts (a reply's type differs from its request's).
        let (sp, dp) = if matches!(p.proto, 1 | 58) { (0, 0) } else { (p.sport, p.dport) };
        if (p.src, sp) <= (p.dst, dp) {
            (p.proto, p.src, sp, p.dst, dp)
        } else {
            (p.proto, p.dst, dp, p.src, sp)
        }
    }

    fn packet(&mut self, p: Pkt, t: Timestamp) {
        self.stats.ip_packets += 1;
        let key = Table::key(&p);
        let idle = if p.proto == 6 { TCP_IDLE_US } else { OTHER_IDLE_US };
        let fresh_syn = p.proto == 6 && p.syn && !p.ack;
        if let Some(o) = self.open.get(&key) {
            let stale = t.0 - o.last.0 > idle;
            // A new connection on the same ends: a SYN after the old one closed, or from
            // the other end than the old one's originator.
            let reopened = fresh_syn && (o.closed || o.rec.src != p.src || o.answered);
            if (stale || reopened)
                && let Some(o) = self.open.remove(&key)
            {
                self.out.push(o.finish());
            }
        }
        if !self.open.contains_key(&key) {
            if self.open.len() >= MAX_OPEN {
                self.expire(t, 0);
            }
            let rec = FlowRecord {
                start: t,
                end: t,
                src: p.src,
                dst: p.dst,
                src_port: if matches!(p.proto, 1 | 58) { 0 } else { p.sport },
                dst_port: p.dport,
                proto: p.proto,
                packets: 0,
                bytes: 0,
                resp_bytes: Some(0),
                exporter: None,
                answered: None,
                local_orig: None,
                local_resp: None,
            };
            self.open.insert(
                key,
                Open { rec, last: t, closed: false, answered: false, reset: false, syn: fresh_syn },
            );
        }
        let Some(o) = self.open.get_mut(&key) else { return };
        o.rec.packets += 1;
        o.rec.bytes += p.bytes;
        o.last = o.last.max(t);
        if p.src != o.rec.src {
            o.rec.resp_bytes = Some(o.rec.resp_bytes.unwrap_or(0) + p.bytes);
            if p.proto == 6 {
                if p.rst && !o.answered {
                    o.reset = true;
                } else if !p.rst {
                    o.answered = true;
                }
            } else {
                o.answered = true;
            }
        }
        if p.fin_rst {
            o.closed = true;
        }
        if self.stats.ip_packets.is_multiple_of(8192) {
            self.expire(t, 1);
        }
    }

    /// Finishes flows idle at `t` (all of them past the table's bound, oldest first, when
    /// `min_idle_us` is 0).
    fn expire(&mut self, t: Timestamp, min_idle_us: i64) {
        let keys: Vec<Key> = if min_idle_us == 0 {
            let mut v: Vec<(Timestamp, Key)> = self.open.iter().map(|(k, o)| (o.last, *k)).collect();
            v.sort_unstable();
            v.into_iter().take(self.open.len() / 10 + 1).map(|(_, k)| k).collect()
        } else {
            self.open
                .iter()
                .filter(|(_, o)| t.0 - o.last.0 > if o.rec.proto == 6 { TCP_IDLE_US } else { OTHER_IDLE_US })
                .map(|(k, _)| *k)
                .collect()
        };
        for k in keys {
            if let Some(o) = self.open.remove(&k) {
                self.out.push(o.finish());
            }
        }
    }
}

/// The flows of a pcap or pcapng capture's packets, by start time.
pub fn flows(data: &[u8]) -> (Vec<FlowRecord>, PacketStats) {
    let mut out = Vec::new();
    let stats = flows_into(data, &mut |f| out.push(f));
    out.sort_by_key(|f| (f.start, f.src, f.dst, f.src_port, f.dst_port));
    (out, stats)
}

/// The flows of a capture read from `input` through one buffer, each handed to `sink` as it
/// ends (a FIN or RST, or idle past its timeout), the ones still open at the end of the
/// capture last, by start time: only the open flows are held, so a capture of any size is
/// read in the memory of its concurrent flows.
pub fn flows_into<R: std::io::Read>(input: R, sink: &mut dyn FnMut(FlowRecord)) -> PacketStats {
    let mut tb = Table { open: HashMap::new(), out: Vec::new(), stats: PacketStats::default() };
    let ended = crate::capture::each_frame(input, |frame| {
        // Simple packets carry no time, which a flow cannot do without.
        if let Frame::Packet(lt, data, t) = frame {
            tb.stats.frames += 1;
            if let Some(p) = slice(lt, data) {
                tb.packet(p, t);
            }
            for f in tb.out.drain(..) {
                tb.stats.flows += 1;
                sink(f);
            }
        }
    });
    tb.stats.truncated = ended.is_err();
    let mut rest: Vec<FlowRecord> = tb.open.into_values().map(Open::finish).collect();
    rest.sort_by_key(|f| (f.start, f.src, f.dst, f.src_port, f.dst_port));
    for f in rest {
        tb.stats.flows += 1;
        sink(f);
    }
    tb.stats
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet/IPv4/TCP frame.
    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: &str) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1024);
        let b = if flags.contains('S') { b.syn() } else { b };
        let b = if flags.contains('A') { b.ack(1) } else { b };
        let b = if flags.contains('R') { b.rst() } else { b };
        let b = if flags.contains('F') { b.fin() } else { b };
        let mut v = Vec::new();
        b.write(&mut v, &[]).unwrap();
        v
    }

    fn pcap(frames: &[(f64, Vec<u8>)]) -> Vec<u8> {
        let mut v =
            vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
        for (t, f) in frames {
            v.extend_from_slice(&(*t as u32).to_le_bytes());
            v.extend_from_slice(&((t.fract() * 1e6).round() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(&(f.len() as u32).to_le_bytes());
            v.extend_from_slice(f);
        }
        v
    }

    #[test]
    fn handshakes_refusals_and_silence_become_flows() {
        let (c, s) = ([10, 0, 0, 5], [198, 51, 100, 7]);
        let frames = vec![
            // Answered and closed.
            (100.0, tcp(c, s, 40000, 443, "S")),
            (100.1, tcp(s, c, 443, 40000, "SA")),
            (100.2, tcp(c, s, 40000, 443, "A")),
            (100.3, tcp(c, s, 40000, 443, "FA")),
            // Refused.
            (102.0, tcp(c, s, 40001, 443, "S")),
            (102.1, tcp(s, c, 443, 40001, "RA")),
            // Never answered, retransmitted.
            (104.0, tcp(c, s, 40002, 443, "S")),
            (105.0, tcp(c, s, 40002, 443, "S")),
            // The same ports again after the first closed: a new flow.
            (110.0, tcp(c, s, 40000, 443, "S")),
        ];
        let (f, st) = flows(&pcap(&frames));
        assert_eq!((st.frames, st.ip_packets, st.flows), (9, 9, 4));
        let got: Vec<(u16, Option<bool>, u64)> =
            f.iter().map(|f| (f.src_port, f.answered, f.packets)).collect();
        assert_eq!(
            got,
            [
                (40000, Some(true), 4),
                (40001, Some(false), 2),
                (40002, Some(false), 2),
                (40000, Some(false), 1)
            ]
        );
        assert!(f.iter().all(|f| f.src.to_string() == "10.0.0.5" && f.dst_port == 443));
        assert_eq!(f[0].end.0 - f[0].start.0, 300_000);
    }

    #[test]
    fn garbage_and_truncation_are_no_panic() {
        assert_eq!(flows(b"not a pcap").0.len(), 0);
        let mut p = pcap(&[(1.0, tcp([10, 0, 0, 1], [8, 8, 8, 8], 1, 2, "S"))]);
        p.truncate(p.len() - 5);
        let (f, st) = flows(&p);
        assert!(f.is_empty() && st.truncated, "{st:?}");
    }
}
