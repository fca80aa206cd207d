//! DNS in pcap/pcapng captures: UDP and TCP port 53, decoded with hickory-proto.
//!
//! TCP streams are reassembled in arrival order per direction (no sequence-number
//! reordering or retransmission handling): enough for captures taken next to a resolver;
//! a message that fails to decode drops that direction's buffer to resynchronise.

use super::pair::Pairer;
use super::{DnsSink, Stats, reject, wire};
use botwatch_model::Timestamp;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::{Linktype, PcapBlockOwned, PcapError, create_reader, pcapng::Block};
use std::collections::HashMap;
use std::net::IpAddr;

const DNS_PORT: u16 = 53;
/// A DNS message over TCP is at most 64 KiB plus its length prefix.
const MAX_TCP_BUFFER: usize = 65_537;

pub(crate) fn looks_like_pcap(b: &[u8]) -> bool {
    matches!(
        b.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
        ) | Some([0x0a, 0x0d, 0x0d, 0x0a])
    )
}

type Flow = (IpAddr, u16, IpAddr, u16);

struct State {
    pairer: Pairer,
    tcp: HashMap<Flow, Vec<u8>>,
}

pub(crate) fn read_pcap(bytes: &[u8], out: &mut dyn DnsSink, stats: &mut Stats) {
    let mut st = State { pairer: Pairer::default(), tcp: HashMap::new() };
    let mut reader = match create_reader(1 << 16, bytes) {
        Ok(r) => r,
        Err(e) => return out.reject(reject(1, &bytes[..bytes.len().min(64)], format!("pcap header: {e:?}"))),
    };
    // Per pcapng interface: link type and time-stamp units per second.
    let mut ifaces: Vec<(Linktype, u64, i64)> = Vec::new();
    let mut legacy: Option<(Linktype, bool)> = None;
    let mut stalls = 0;
    loop {
        match reader.next() {
            Ok((used, block)) => {
                stalls = 0;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        stats.packets += 1;
                        let (lt, nanos) = legacy.unwrap_or((Linktype::ETHERNET, false));
                        let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
                        let t = Timestamp(i64::from(b.ts_sec) * 1_000_000 + frac);
                        packet(lt, b.data, t, stats.packets, &mut st, out, stats);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push((
                            idb.linktype,
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        ));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        stats.packets += 1;
                        let n = stats.packets;
                        match ifaces.get(epb.if_id as usize) {
                            Some(&(lt, res, off)) => {
                                let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                let secs = i64::try_from(ticks / res.max(1)).unwrap_or(0).saturating_add(off);
                                let sub =
                                    ((ticks % res.max(1)) as u128 * 1_000_000 / res.max(1) as u128) as i64;
                                let t = Timestamp(secs.saturating_mul(1_000_000).saturating_add(sub));
                                let data = &epb.data[..(epb.caplen as usize).min(epb.data.len())];
                                packet(lt, data, t, n, &mut st, out, stats);
                            }
                            None => {
                                out.reject(reject(n, epb.data, "packet on an undeclared pcapng interface"))
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        stats.packets += 1;
                        let lt = ifaces.first().map_or(Linktype::ETHERNET, |i| i.0);
                        // Simple packets carry no time; the record gets the epoch.
                        packet(lt, spb.data, Timestamp(0), stats.packets, &mut st, out, stats);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(used);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                stalls += 1;
                if stalls > 2 || reader.refill().is_err() {
                    out.reject(reject(stats.packets + 1, &[], "truncated capture"));
                    break;
                }
            }
            Err(e) => {
                out.reject(reject(stats.packets + 1, &[], format!("corrupt capture: {e:?}")));
                break;
            }
        }
    }
    st.pairer.finish(out, stats);
}

fn packet(
    lt: Linktype,
    data: &[u8],
    t: Timestamp,
    n: u64,
    st: &mut State,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) {
    let sliced = match lt {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(data),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(data),
        Linktype::NULL | Linktype::LOOP if data.len() > 4 => SlicedPacket::from_ip(&data[4..]),
        _ => {
            stats.packets_skipped += 1;
            return;
        }
    };
    let Ok(p) = sliced else {
        // Truncated snaplen or non-IP frames: not DNS we can read; not a parse failure of ours.
        stats.packets_skipped += 1;
        return;
    };
    let (src, dst) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            (IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr()))
        }
        Some(NetSlice::Ipv6(v6)) => {
            (IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr()))
        }
        _ => {
            stats.packets_skipped += 1;
            return;
        }
    };
    match &p.transport {
        Some(TransportSlice::Udp(u)) if u.source_port() == DNS_PORT || u.destination_port() == DNS_PORT => {
            let flow = (src, u.source_port(), dst, u.destination_port());
            message(u.payload(), flow, t, n, data, st, out, stats);
        }
        Some(TransportSlice::Tcp(tcp))
            if tcp.source_port() == DNS_PORT || tcp.destination_port() == DNS_PORT =>
        {
            let flow = (src, tcp.source_port(), dst, tcp.destination_port());
            if tcp.rst() || tcp.syn() {
                st.tcp.remove(&flow);
            }
            let payload = tcp.payload();
            if payload.is_empty() {
                return;
            }
            let mut buf = st.tcp.remove(&flow).unwrap_or_default();
            buf.extend_from_slice(payload);
            let mut pos = 0;
            while buf.len() - pos >= 2 {
                let len = usize::from(u16::from_be_bytes([buf[pos], buf[pos + 1]]));
                if buf.len() - pos < 2 + len {
                    break;
                }
                let ok = message(&buf[pos + 2..pos + 2 + len], flow, t, n, data, st, out, stats);
                pos += 2 + len;
                if !ok {
                    pos = buf.len();
                }
            }
            buf.drain(..pos);
            if !buf.is_empty() && buf.len() <= MAX_TCP_BUFFER && !tcp.fin() {
                st.tcp.insert(flow, buf);
            }
        }
        _ => stats.packets_skipped += 1,
    }
}

/// One DNS message; `false` when it did not decode.
#[allow(clippy::too_many_arguments)] // the flow, time and numbering of one packet plus the decode state
fn message(
    msg: &[u8],
    (src, sport, dst, dport): Flow,
    t: Timestamp,
    n: u64,
    raw: &[u8],
    st: &mut State,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) -> bool {
    match wire::decode(msg) {
        Ok(s) if s.is_response => st.pairer.response(s, t, dst, Some(dport), out, stats),
        Ok(s) => st.pairer.query(s, t, src, Some(sport), out, stats),
        Err(e) => {
            out.reject(reject(n, raw, e));
            return false;
        }
    }
    true
}
