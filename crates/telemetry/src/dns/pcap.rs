//! DNS in pcap/pcapng captures: UDP and TCP port 53, decoded with hickory-proto.
//!
//! TCP streams are reassembled in arrival order per direction (no sequence-number
//! reordering or retransmission handling): enough for captures taken next to a resolver;
//! a message that fails to decode drops that direction's buffer to resynchronise.

use super::pair::Pairer;
use super::{DnsSink, Stats, reject, wire};
use botwatch_model::Timestamp;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::{Linktype, PcapHeader, parse_pcap_frame, parse_pcap_frame_be};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

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
    match pcap_parser::parse_pcap_header(bytes) {
        Ok((frames, h)) if !h.is_modified_format() => read_legacy(frames, &h, &mut st, out, stats),
        _ => read_blocks(bytes, bytes, &mut st, out, stats),
    }
    st.pairer.finish(out, stats);
}

/// A classic pcap file, frame by frame over the bytes in place: the streaming reader would
/// copy every frame through its buffer, and refuses frames of 64 KiB and more.
fn read_legacy(mut rem: &[u8], h: &PcapHeader, st: &mut State, out: &mut dyn DnsSink, stats: &mut Stats) {
    let (lt, nanos, big_endian) = (h.network, h.is_nanosecond_precision(), h.is_bigendian());
    while !rem.is_empty() {
        let frame = if big_endian { parse_pcap_frame_be(rem) } else { parse_pcap_frame(rem) };
        let Ok((next, b)) = frame else {
            // The only failure of a frame over a slice is running out of bytes; the reason is
            // worded as the streaming reader words it.
            out.reject(reject(stats.packets + 1, &[], "corrupt capture: UnexpectedEof"));
            break;
        };
        rem = next;
        stats.packets += 1;
        let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
        let t = Timestamp(i64::from(b.ts_sec) * 1_000_000 + frac);
        packet(lt, b.data, t, stats.packets, st, out, stats);
    }
}

/// A capture of any size from a reader, through pcap-parser's streaming reader: what a
/// file too large to hold in memory is read with.
pub(crate) fn read_pcap_from<R: std::io::Read>(input: R, out: &mut dyn DnsSink, stats: &mut Stats) {
    let mut st = State { pairer: Pairer::default(), tcp: HashMap::new() };
    read_blocks(input, &[], &mut st, out, stats);
    st.pairer.finish(out, stats);
}

/// pcapng (and the rare "modified" pcap) through pcap-parser's streaming reader. `head` is
/// what a header reject shows.
fn read_blocks<R: std::io::Read>(
    input: R,
    head: &[u8],
    st: &mut State,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) {
    use crate::capture::{Frame, Stop, each_frame};
    let ended = each_frame(input, |frame| {
        stats.packets += 1;
        let n = stats.packets;
        match frame {
            Frame::Packet(lt, data, t) => packet(lt, data, t, n, st, out, stats),
            // Simple packets carry no time; the record gets the epoch.
            Frame::Simple(lt, data) => packet(lt, data, Timestamp(0), n, st, out, stats),
            Frame::Undeclared(data) => {
                out.reject(reject(n, data, "packet on an undeclared pcapng interface"))
            }
        }
    });
    match ended {
        Ok(()) => {}
        Err(Stop::Header(e)) => {
            out.reject(reject(1, &head[..head.len().min(64)], format!("pcap header: {e}")))
        }
        Err(Stop::Truncated) => out.reject(reject(stats.packets + 1, &[], "truncated capture")),
        Err(Stop::Corrupt(e)) => out.reject(reject(stats.packets + 1, &[], format!("corrupt capture: {e}"))),
    }
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
    if let Some((flow, payload)) = udp_fast(lt, data) {
        if flow.1 == DNS_PORT || flow.3 == DNS_PORT {
            message(payload, flow, t, n, data, st, out, stats);
        } else {
            stats.packets_skipped += 1;
        }
        return;
    }
    // The link types the flow reader knows too (Linux cooked v2 is what `tcpdump -i any`
    // writes today).
    let Some(p) = crate::capture::slice(lt, data) else {
        // Other link types, truncated snaplen or non-IP frames: not DNS we can read; not a
        // parse failure of ours.
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

/// The flow and payload of the most common frame, an unfragmented UDP datagram over IPv4
/// without options, in Ethernet II or raw IP, sliced by hand exactly as etherparse would
/// slice it; `None` for every other frame, which etherparse then takes.
fn udp_fast(lt: Linktype, data: &[u8]) -> Option<(Flow, &[u8])> {
    let ip = match lt {
        Linktype::ETHERNET if data.get(12..14)? == [0x08, 0x00] => &data[14..],
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => data,
        _ => return None,
    };
    let h = ip.get(..20)?;
    // Version 4 with a 20-byte header, UDP, neither more fragments nor a fragment offset.
    if h[0] != 0x45 || h[9] != 17 || h[6] & 0x3f != 0 || h[7] != 0 {
        return None;
    }
    // The IP total length bounds the datagram (Ethernet pads short frames).
    let udp = ip.get(20..usize::from(u16::from_be_bytes([h[2], h[3]])))?;
    let uh = udp.get(..8)?;
    let payload = match usize::from(u16::from_be_bytes([uh[4], uh[5]])) {
        // A zero UDP length means "the rest"; etherparse reads it so too.
        0 => &udp[8..],
        len @ 8.. => udp.get(8..len)?,
        _ => return None,
    };
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    let flow = (src, u16::from_be_bytes([uh[0], uh[1]]), dst, u16::from_be_bytes([uh[2], uh[3]]));
    Some((flow, payload))
}

/// What etherparse makes of a frame, in `udp_fast`'s terms.
fn via_etherparse(lt: Linktype, data: &[u8]) -> Option<(Flow, &[u8])> {
    let p = match lt {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        _ => SlicedPacket::from_ip(data),
    }
    .ok()?;
    let (src, dst) = match p.net? {
        NetSlice::Ipv4(v4) => {
            (IpAddr::V4(v4.header().source_addr()), IpAddr::V4(v4.header().destination_addr()))
        }
        NetSlice::Ipv6(v6) => {
            (IpAddr::V6(v6.header().source_addr()), IpAddr::V6(v6.header().destination_addr()))
        }
        _ => return None,
    };
    match p.transport? {
        TransportSlice::Udp(u) => Some(((src, u.source_port(), dst, u.destination_port()), u.payload())),
        _ => None,
    }
}

/// For the fuzz target: the fast path declines or slices as etherparse does.
pub(crate) fn check_udp_fast(data: &[u8]) {
    for lt in [Linktype::ETHERNET, Linktype::RAW] {
        if let Some(fast) = udp_fast(lt, data) {
            assert_eq!(via_etherparse(lt, data), Some(fast), "UDP fast path differs from etherparse");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agrees(lt: Linktype, data: &[u8]) -> bool {
        udp_fast(lt, data).is_none_or(|fast| via_etherparse(lt, data) == Some(fast))
    }

    /// Ethernet, IPv4 and UDP headers around `payload`, as a resolver's capture has them.
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00];
        let total = (28 + payload.len()) as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 5, 10, 0, 0, 53]);
        let ulen = (8 + payload.len()) as u16;
        f.extend_from_slice(&[0xd2, 0x4e, 0, 53, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// IPv4 and UDP headers around `payload`.
    fn ip_udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let total = (28 + payload.len()) as u16;
        let mut f = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 64, 17, 0, 0];
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        let ulen = (8 + payload.len()) as u16;
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&[(ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn linux_cooked_v2_captures_are_read() {
        // "example.com" A, and its answer 93.184.216.34.
        let q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
        let mut a = q.to_vec();
        a[2..4].copy_from_slice(&[0x81, 0x80]);
        a[7] = 1;
        a.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd8\x22");
        // The 20-byte cooked v2 header: EtherType IPv4, interface, ARPHRD_ETHER, outgoing, MAC.
        let sll2 = |ip: Vec<u8>| {
            let mut f = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0];
            f.extend_from_slice(&ip);
            f
        };
        let frames = [
            sll2(ip_udp([10, 0, 0, 5], 53838, [10, 0, 0, 53], 53, q)),
            sll2(ip_udp([10, 0, 0, 53], 53, [10, 0, 0, 5], 53838, &a)),
        ];
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0];
        file.extend_from_slice(&276u32.to_le_bytes());
        for (i, f) in frames.iter().enumerate() {
            for v in [1_700_000_000u32, i as u32, f.len() as u32, f.len() as u32] {
                file.extend_from_slice(&v.to_le_bytes());
            }
            file.extend_from_slice(f);
        }
        let (mut out, mut stats) = (crate::dns::Collected::default(), Stats::default());
        read_pcap(&file, &mut out, &mut stats);
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        assert_eq!(out.records.len(), 1, "{stats:?}");
        let r = &out.records[0];
        assert_eq!((r.client.to_string(), r.qname.as_str()), ("10.0.0.5".to_string(), "example.com"));
        assert_eq!(r.answers, vec![IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34))]);
    }

    #[test]
    fn the_udp_fast_path_slices_as_etherparse_does() {
        let f = frame(b"dns message");
        let (flow, payload) = udp_fast(Linktype::ETHERNET, &f).unwrap();
        assert_eq!((flow.1, flow.3, payload), (53838, 53, &b"dns message"[..]));
        assert_eq!(via_etherparse(Linktype::ETHERNET, &f), Some((flow, payload)));
        assert!(udp_fast(Linktype::RAW, &f[14..]).is_some() && agrees(Linktype::RAW, &f[14..]));
        // Every frame of the sample captures, cut at every length.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns/go-dnscollector");
        let mut taken = 0;
        for name in ["dnsdump_udp.pcap", "dnsdump_tcp.pcap", "dnsdump_udp+tcp.pcap"] {
            let data = std::fs::read(dir.join(name)).unwrap();
            for b in pcap_parser::LegacyPcapSlice::from_slice(&data).unwrap() {
                let Ok(pcap_parser::PcapBlockOwned::Legacy(b)) = b else { continue };
                taken += usize::from(udp_fast(Linktype::ETHERNET, b.data).is_some());
                for cut in 0..=b.data.len() {
                    assert!(agrees(Linktype::ETHERNET, &b.data[..cut]), "{name}");
                }
            }
        }
        assert!(taken > 10);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        /// Headers with their fields bent (lengths, version, fragments, protocol, link
        /// type) either leave the fast path or come out as etherparse slices them.
        #[test]
        fn the_udp_fast_path_declines_or_agrees(
            payload in prop::collection::vec(any::<u8>(), 0..24),
            edits in prop::collection::vec((0usize..42, any::<u8>()), 0..3),
            cut in any::<Option<usize>>(),
            raw in any::<bool>(),
        ) {
            let mut f = frame(&payload);
            for (i, b) in edits {
                f[i] = b;
            }
            if let Some(c) = cut {
                f.truncate(c % (f.len() + 1));
            }
            let (lt, data) = if raw && f.len() >= 14 { (Linktype::RAW, &f[14..]) } else { (Linktype::ETHERNET, &f[..]) };
            prop_assert!(agrees(lt, data));
        }
    }
}
