//! DNS wire messages (RFC 1035) through hickory-proto, reduced to what a [`DnsRecord`] needs.
//!
//! The common messages of a capture (a query, or a response whose answers are all A/AAAA
//! for the question's name, with at most an EDNS OPT record besides) are read straight from
//! the wire by [`decode_fast`]; everything else, and every malformed message, goes through
//! hickory-proto, which also words the reject reason. The fast path only accepts what
//! hickory would decode to the same summary (a test and a fuzz target hold it to that).

use crate::record::DnsRecord;
use botwatch_model::Timestamp;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{RData, RecordType};
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The parts of one decoded message the decoders pair and keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub id: u16,
    pub is_response: bool,
    pub qname: String,
    pub qtype: Cow<'static, str>,
    pub rcode: Cow<'static, str>,
    pub answers: Vec<IpAddr>,
}

impl Summary {
    pub(crate) fn into_record(self, time: Timestamp, client: IpAddr, port: Option<u16>) -> DnsRecord {
        let is_response = self.is_response;
        DnsRecord {
            time,
            client,
            client_port: port,
            qname: self.qname,
            qtype: self.qtype,
            rcode: is_response.then_some(self.rcode),
            answers: self.answers,
            server: None,
        }
    }
}

/// Decodes one message; `Err` carries the reason for a reject. A message without a question
/// is an error too: there is nothing to match.
pub(crate) fn decode(buf: &[u8]) -> Result<Summary, String> {
    match decode_fast(buf) {
        Some(s) => Ok(s),
        None => decode_full(buf),
    }
}

/// Every message through hickory-proto.
pub(crate) fn decode_full(buf: &[u8]) -> Result<Summary, String> {
    let msg = Message::from_vec(buf).map_err(|e| format!("DNS message: {e}"))?;
    let q = msg.queries.first().ok_or_else(|| "DNS message without a question".to_string())?;
    let answers = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok(Summary {
        id: msg.metadata.id,
        is_response: msg.metadata.message_type == MessageType::Response,
        qname: normalise_qname(&q.name().to_ascii()),
        qtype: qtype_mnemonic(q.query_type()),
        rcode: rcode_mnemonic(u16::from(msg.metadata.response_code)),
        answers,
    })
}

/// For the fuzz target: the fast path declines or agrees with hickory.
pub(crate) fn check_fast(buf: &[u8]) {
    if let Some(fast) = decode_fast(buf) {
        assert_eq!(decode_full(buf), Ok(fast), "DNS fast path differs from hickory-proto");
    }
}

/// EDNS option codes hickory-proto parses (and can reject): NSID, DAU, client subnet.
const PARSED_EDNS_OPTIONS: [u16; 3] = [3, 5, 8];
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;

/// Label bytes hickory's `to_ascii` prints as they are: letters, digits, `_`, and `-` when
/// not first in the label (checked apart).
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        c += 1;
    }
    t
};

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The summary of a message of the common shape, read without hickory-proto; `None` when
/// the message has any other shape (hickory then decides). Accepted:
/// - exactly one question whose name is uncompressed, with labels of letters, digits, `_`
///   and inner `-` only (what hickory prints unescaped), at most 255 octets on the wire;
/// - no authority records; in a query no answers, in a response only A/AAAA answers of
///   the right length whose owner is a pointer to the question's name;
/// - at most one additional record: an EDNS OPT at the root whose options hickory keeps
///   opaque, laid out to fill its data exactly.
///
/// Bytes after the last record are ignored, as hickory ignores them.
pub(crate) fn decode_fast(buf: &[u8]) -> Option<Summary> {
    let header = buf.get(..12)?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let is_response = header[2] & 0x80 != 0;
    let rcode_low = header[3] & 0x0f;
    let (qd, an, ns, ar) = (be16(header, 4)?, be16(header, 6)?, be16(header, 8)?, be16(header, 10)?);
    if qd != 1 || ns != 0 || ar > 1 || (an != 0 && !is_response) {
        return None;
    }
    // The question's name: validate first, so the string is allocated once at its size.
    let mut pos = 12;
    loop {
        let len = usize::from(*buf.get(pos)?);
        if len == 0 {
            pos += 1;
            break;
        }
        // Pointers (and the reserved 0x40/0x80 label types) are hickory's to follow or refuse.
        if len & 0xc0 != 0 {
            return None;
        }
        let label = buf.get(pos + 1..pos + 1 + len)?;
        // Without early exit: labels are short, and a branch per byte costs more.
        if label[0] == b'-' || !label.iter().fold(true, |ok, &c| ok & PLAIN[usize::from(c)]) {
            return None;
        }
        pos += 1 + len;
        // Labels, their length octets and the root: at most 255 octets, as hickory allows.
        if pos - 12 >= 255 {
            return None;
        }
    }
    let qtype = be16(buf, pos)?;
    be16(buf, pos + 2)?; // class: any value decodes
    let name_end = pos;
    pos += 4;

    let mut answers = Vec::new();
    for _ in 0..an {
        // Owner name: a pointer to offset 12, the question's name.
        if buf.get(pos..pos + 2)? != [0xc0, 0x0c] {
            return None;
        }
        let rtype = be16(buf, pos + 2)?;
        let rdlen = usize::from(be16(buf, pos + 10)?);
        let data = buf.get(pos + 12..pos + 12 + rdlen)?;
        answers.push(match (rtype, data.len()) {
            (TYPE_A, 4) => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).ok()?)),
            (TYPE_AAAA, 16) => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).ok()?)),
            _ => return None,
        });
        pos += 12 + rdlen;
    }
    let mut rcode_high = 0;
    if ar == 1 {
        // Root owner, type OPT, class (payload size), TTL (extended rcode, version, flags).
        if *buf.get(pos)? != 0 || be16(buf, pos + 1)? != TYPE_OPT {
            return None;
        }
        rcode_high = *buf.get(pos + 5)?;
        let rdlen = usize::from(be16(buf, pos + 9)?);
        let mut opts = buf.get(pos + 11..pos + 11 + rdlen)?;
        while !opts.is_empty() {
            let code = be16(opts, 0)?;
            let len = usize::from(be16(opts, 2)?);
            if PARSED_EDNS_OPTIONS.contains(&code) {
                return None;
            }
            opts = opts.get(4 + len..)?;
        }
    }

    let mut name = Vec::with_capacity(name_end - 12);
    let mut at = 12;
    while at < name_end - 1 {
        let len = usize::from(buf[at]);
        if at > 12 {
            name.push(b'.');
        }
        name.extend_from_slice(&buf[at + 1..at + 1 + len]);
        at += 1 + len;
    }
    name.make_ascii_lowercase();
    if name.is_empty() {
        name.push(b'.');
    }
    // Validated above: every byte is ASCII, so this never declines.
    let qname = String::from_utf8(name).ok()?;
    Some(Summary {
        id,
        is_response,
        qname,
        qtype: qtype_mnemonic(RecordType::from(qtype)),
        // What hickory's `ResponseCode::from(high, low)` gives (a test holds it to that).
        rcode: rcode_mnemonic((u16::from(rcode_high) << 4) | u16::from(rcode_low)),
        answers,
    })
}

/// Lower case, no trailing dot; the root stays `.` so a qname is never empty.
pub(crate) fn normalise_qname(s: &str) -> String {
    let t = s.strip_suffix('.').unwrap_or(s);
    if t.is_empty() { ".".to_string() } else { t.to_ascii_lowercase() }
}

pub(crate) fn qtype_mnemonic(t: RecordType) -> Cow<'static, str> {
    match t {
        RecordType::Unknown(n) => Cow::Owned(format!("TYPE{n}")),
        t => Cow::Borrowed(t.into()),
    }
}

/// Mnemonics as in the IANA registry and as Unbound/BIND print them.
pub(crate) fn rcode_mnemonic(code: u16) -> Cow<'static, str> {
    Cow::Borrowed(match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        n => return Cow::Owned(format!("RCODE{n}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `www.example.com IN A`, id 0x1234, RD.
    fn query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["WWW", "example", "com"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    #[test]
    fn decodes_a_query_and_a_response() {
        let q = decode(&query()).unwrap();
        assert_eq!(
            (q.id, q.is_response, q.qname.as_str(), &*q.qtype),
            (0x1234, false, "www.example.com", "A")
        );
        let mut r = query();
        r[2] = 0x81;
        r[3] = 0x83; // NXDOMAIN
        r[7] = 1; // one answer
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        let s = decode(&r).unwrap();
        assert!(s.is_response);
        assert_eq!(s.rcode, "NXDOMAIN");
        assert_eq!(s.answers, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn truncated_and_empty_are_errors() {
        let q = query();
        for cut in 0..q.len() {
            assert!(decode(&q[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(rcode_mnemonic(99), "RCODE99");
        assert_eq!(qtype_mnemonic(RecordType::Unknown(65280)), "TYPE65280");
        assert_eq!(normalise_qname("."), ".");
    }

    #[test]
    fn the_fast_path_takes_the_common_shapes() {
        let q = query();
        assert_eq!(decode_fast(&q), Some(decode_full(&q).unwrap()));
        let mut r = query();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2; // two answers, A and AAAA
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        r.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
        r.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        r[11] = 1; // EDNS with a cookie option and an extended rcode of 1 (BADVERS)
        r.extend_from_slice(&[0, 0, 41, 4, 208, 1, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
        let fast = decode_fast(&r).expect("fast path");
        assert_eq!(Ok(fast.clone()), decode_full(&r));
        assert_eq!((&*fast.rcode, fast.answers.len()), ("BADVERS", 2));
        // Declined: a compressed question, a CNAME answer, an authority record, a client
        // subnet option, an escaped label; hickory decides those.
        let mut p = query();
        p.truncate(12);
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let mut cname = query();
        cname[2] = 0x81;
        cname[7] = 1;
        cname.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        let mut auth = query();
        auth[9] = 1;
        let mut ecs = query();
        ecs[11] = 1;
        ecs.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 8, 0, 8, 0, 4, 0, 1, 0, 0]);
        let mut odd = query();
        odd[13] = b'*';
        for m in [p, cname, auth, ecs, odd] {
            assert_eq!(decode_fast(&m), None, "{m:02x?}");
            assert!(agrees(&m));
        }
    }

    #[test]
    fn extended_rcodes_combine_as_hickory_combines_them() {
        use hickory_proto::op::ResponseCode;
        for high in 0..=u8::MAX {
            for low in 0..16 {
                let ours = (u16::from(high) << 4) | u16::from(low);
                assert_eq!(ours, u16::from(ResponseCode::from(high, low)), "{high} {low}");
            }
        }
    }

    #[test]
    fn long_and_root_names() {
        for len in [1, 62, 63] {
            let label = "A".repeat(len);
            let mut m = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, len as u8];
            m.extend_from_slice(label.as_bytes());
            m.extend_from_slice(&[3, b'c', b'o', b'm', 0, 0, 1, 0, 1]);
            let s = decode_fast(&m).unwrap();
            assert_eq!(s.qname, format!("{}.com", label.to_ascii_lowercase()));
            assert_eq!(Ok(s), decode_full(&m));
        }
        let root = [0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        assert_eq!(decode_fast(&root).map(|s| s.qname), Some(".".to_string()));
        assert!(agrees(&root));
        // 4 labels of 63: 256 octets on the wire, one too many for hickory.
        let mut long = root[..12].to_vec();
        for _ in 0..4 {
            long.push(63);
            long.extend_from_slice(&[b'x'; 63]);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(decode_fast(&long), None);
        assert!(decode_full(&long).is_err());
        // 62 + 3 × 63 in labels: 256 octets, still too many; 61 + 3 × 63: 255, the most.
        long.drain(12..13 + 63);
        long.splice(12..12, [62].into_iter().chain([b'y'; 62]));
        assert!(decode_fast(&long).is_none() && decode_full(&long).is_err());
        long.splice(12..13 + 62, [61].into_iter().chain([b'y'; 61]));
        assert!(decode_fast(&long).is_some() && agrees(&long));
    }

    /// The fast path declines or gives exactly hickory's summary.
    fn agrees(buf: &[u8]) -> bool {
        decode_fast(buf).is_none_or(|fast| decode_full(buf) == Ok(fast))
    }

    /// Every DNS message in the repository's samples: the captures' UDP payloads and
    /// single-segment TCP messages, and the dnstap files' query and response messages.
    fn sample_messages() -> Vec<Vec<u8>> {
        use super::super::{dnstap, fstrm};
        use etherparse::{SlicedPacket, TransportSlice};
        use prost::Message as _;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns");
        let mut out = Vec::new();
        for f in ["dnsdump_udp.pcap", "dnsdump_tcp.pcap", "dnsdump_udp+tcp.pcap"] {
            let data = std::fs::read(dir.join("go-dnscollector").join(f)).unwrap();
            for b in pcap_parser::LegacyPcapSlice::from_slice(&data).unwrap() {
                let Ok(pcap_parser::PcapBlockOwned::Legacy(b)) = b else { continue };
                match SlicedPacket::from_ethernet(b.data).ok().and_then(|p| p.transport) {
                    Some(TransportSlice::Udp(u)) => out.push(u.payload().to_vec()),
                    Some(TransportSlice::Tcp(t)) if t.payload().len() > 2 => {
                        out.push(t.payload()[2..].to_vec())
                    }
                    _ => {}
                }
            }
        }
        for f in ["generated_unbound/unbound.dnstap.fstrm", "go-dnscollector/dnstap.fstrm"] {
            let data = std::fs::read(dir.join(f)).unwrap();
            let mut pos = 0;
            while let Ok(Some((frame, used))) = fstrm::parse_frame(&data[pos..], fstrm::MAX_DATA_FRAME) {
                pos += used;
                if let fstrm::Frame::Data(d) = frame
                    && let Some(m) = dnstap::Dnstap::decode(d).ok().and_then(|t| t.message)
                {
                    out.extend(m.query_message);
                    out.extend(m.response_message);
                }
            }
        }
        out
    }

    #[test]
    fn the_fast_path_agrees_with_hickory_on_every_sample_message_cut_and_flipped() {
        let msgs = sample_messages();
        let fast = msgs.iter().filter(|m| decode_fast(m).is_some()).count();
        assert!(msgs.len() > 1000 && fast * 2 > msgs.len(), "fast path took {fast} of {}", msgs.len());
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for m in &msgs {
            assert!(agrees(m), "{m:02x?}");
            for cut in 0..m.len() {
                assert!(agrees(&m[..cut]), "{:02x?}", &m[..cut]);
            }
            for _ in 0..64 {
                let mut v = m.clone();
                for _ in 0..1 + next() % 3 {
                    let i = next() as usize % v.len();
                    v[i] = next() as u8;
                }
                assert!(agrees(&v), "{v:02x?}");
            }
        }
    }

    mod generated {
        use super::*;
        use proptest::prelude::*;

        /// Messages near the fast path's shape: mostly well-formed, with label bytes that
        /// hickory sometimes escapes, and counts, types, lengths and EDNS options that are
        /// sometimes off.
        fn message() -> impl Strategy<Value = Vec<u8>> {
            let label = prop_oneof![
                6 => prop::collection::vec(prop::sample::select(b"abcXYZ019-_".to_vec()), 1..8),
                1 => prop::collection::vec(prop::sample::select(b"aZ-*. \\\x80".to_vec()), 1..8),
            ];
            let often = |v: u16, other: Vec<u16>| {
                let mut all = vec![v; 6];
                all.extend(other);
                prop::sample::select(all)
            };
            (
                any::<[u8; 4]>(),
                (often(1, vec![0, 2]), often(0, vec![1]), often(0, vec![1, 2]), often(0, vec![1, 2])),
                prop::collection::vec(label, 0..4),
                prop::sample::select(vec![1u16, 28, 16, 41, 255, 65280]),
                prop::collection::vec(
                    (
                        prop::sample::select(vec![
                            (1u16, 4usize),
                            (1, 4),
                            (1, 4),
                            (28, 16),
                            (28, 16),
                            (5, 4),
                            (1, 16),
                            (41, 0),
                        ]),
                        prop::sample::select(vec![
                            [0xc0u8, 12],
                            [0xc0, 12],
                            [0xc0, 12],
                            [0xc0, 12],
                            [0xc0, 13],
                            [0, 0],
                        ]),
                    ),
                    0..3,
                ),
                prop::option::of(prop::collection::vec(
                    (prop::sample::select(vec![10u16, 12, 15, 999, 3, 5, 8]), 0usize..6, any::<bool>()),
                    0..3,
                )),
                prop::collection::vec(any::<u8>(), 0..4),
            )
                .prop_map(
                    |(hdr, (qd, an_off, ns, ar_off), labels, qtype, answers, opt, tail)| {
                        let an = answers.len() as u16 + an_off;
                        let ar = u16::from(opt.is_some()) + ar_off;
                        let mut m = vec![hdr[0], hdr[1], hdr[2], hdr[3]];
                        for c in [qd, an, ns, ar] {
                            m.extend_from_slice(&c.to_be_bytes());
                        }
                        for l in &labels {
                            m.push(l.len() as u8);
                            m.extend_from_slice(l);
                        }
                        m.push(0);
                        m.extend_from_slice(&qtype.to_be_bytes());
                        m.extend_from_slice(&[0, 1]);
                        for ((t, len), owner) in answers {
                            m.extend_from_slice(&owner);
                            m.extend_from_slice(&t.to_be_bytes());
                            m.extend_from_slice(&[0, 1, 0, 0, 0, 9]);
                            m.extend_from_slice(&(len as u16).to_be_bytes());
                            m.extend(std::iter::repeat_n(7, len));
                        }
                        if let Some(opts) = opt {
                            let mut rdata = Vec::new();
                            for (code, len, short) in opts {
                                rdata.extend_from_slice(&code.to_be_bytes());
                                rdata.extend_from_slice(&(len as u16).to_be_bytes());
                                rdata.extend(std::iter::repeat_n(
                                    1,
                                    if short { len.saturating_sub(1) } else { len },
                                ));
                            }
                            m.extend_from_slice(&[0, 0, 41, 16, 0, hdr[3], 0, 0, 0]);
                            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                            m.extend_from_slice(&rdata);
                        }
                        m.extend_from_slice(&tail);
                        m
                    },
                )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]
            #[test]
            fn the_fast_path_declines_or_agrees(m in message(), flip in prop::option::weighted(0.2, any::<(usize, u8)>())) {
                let mut m = m;
                if let Some((i, b)) = flip {
                    let n = m.len();
                    m[i % n] = b;
                }
                prop_assert!(agrees(&m), "{:02x?}", m);
            }

            #[test]
            fn random_bytes_decline_or_agree(m in prop::collection::vec(any::<u8>(), 0..64)) {
                prop_assert!(agrees(&m));
            }
        }
    }
}
