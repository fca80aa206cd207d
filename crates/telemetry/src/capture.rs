//! What the capture readers share: the frames of a pcap or pcapng file with their link type
//! and time (pcap-parser's streaming reader), and a frame sliced to its IP packet by link
//! type (etherparse). Used by DNS from captures and by flows from captures' packets; the
//! NetFlow replay slices with [`slice`] too.

use botwatch_model::Timestamp;
use etherparse::SlicedPacket;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{LegacyPcapReader, Linktype, PcapBlockOwned, PcapError, PcapNGReader, pcapng::Block};
use std::io::Read;

/// One packet block of a capture.
pub(crate) enum Frame<'a> {
    /// A packet (legacy pcap or pcapng enhanced packet), cut to its captured length.
    Packet(Linktype, &'a [u8], Timestamp),
    /// A pcapng simple packet: the first interface's link type, and no time.
    Simple(Linktype, &'a [u8]),
    /// An enhanced packet on an interface no block declared.
    Undeclared(&'a [u8]),
}

/// Why the frames stopped before the end of the file.
pub(crate) enum Stop {
    /// Not a capture the reader knows.
    Header(String),
    /// The file ends inside a block.
    Truncated,
    Corrupt(String),
}

/// The read buffer grows to hold a block up to this size (a corrupt length must not make it
/// any size); captures of offloaded segments hold frames of 64 KiB and more.
const MAX_BLOCK_BUFFER: usize = 16 << 20;

/// pcap-parser's `create_reader` without its `Send` bound, which a decompressing reader (a
/// gzipped capture read as it expands) does not meet. The reader parses its first block (a
/// pcapng section header with its options, which dumpcap and Wireshark write at well over 64
/// bytes) from one `read`, so a buffer's worth is read in full first: a decompressor's first
/// read may return less, and a `Chain`'s returns only its first part.
fn open<'a, R: Read + 'a>(capacity: usize, mut input: R) -> Result<Box<dyn PcapReaderIterator + 'a>, String> {
    const NG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    let mut head = Vec::with_capacity(capacity);
    (&mut input).take(capacity as u64).read_to_end(&mut head).map_err(|e| format!("{e}"))?;
    if head.is_empty() {
        return Err(format!("{:?}", PcapError::<&[u8]>::Eof));
    }
    let ng = head.starts_with(&NG_MAGIC);
    let input = std::io::Cursor::new(head).chain(input);
    if ng {
        PcapNGReader::new(capacity, input).map(|r| Box::new(r) as Box<dyn PcapReaderIterator>)
    } else {
        LegacyPcapReader::new(capacity, input).map(|r| Box::new(r) as Box<dyn PcapReaderIterator>)
    }
    .map_err(|e| format!("{e:?}"))
}

/// Calls `f` for every packet block, in file order, reading `input` through one buffer (a
/// slice, or a file of any size).
pub(crate) fn each_frame<R: Read>(input: R, mut f: impl FnMut(Frame<'_>)) -> Result<(), Stop> {
    let mut capacity = 1 << 16;
    let mut reader = open(capacity, input).map_err(Stop::Header)?;
    // Per pcapng interface: link type, time-stamp units per second, offset in seconds.
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
                        let (lt, nanos) = legacy.unwrap_or((Linktype::ETHERNET, false));
                        let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
                        let t = Timestamp(i64::from(b.ts_sec) * 1_000_000 + frac);
                        f(Frame::Packet(lt, &b.data[..(b.caplen as usize).min(b.data.len())], t));
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push((
                            idb.linktype,
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        ));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => match ifaces.get(epb.if_id as usize) {
                        Some(&(lt, res, off)) => {
                            let res = res.max(1);
                            let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            let secs = i64::try_from(ticks / res).unwrap_or(0).saturating_add(off);
                            let sub = ((ticks % res) as u128 * 1_000_000 / res as u128) as i64;
                            let t = Timestamp(secs.saturating_mul(1_000_000).saturating_add(sub));
                            f(Frame::Packet(lt, &epb.data[..(epb.caplen as usize).min(epb.data.len())], t));
                        }
                        None => f(Frame::Undeclared(epb.data)),
                    },
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        f(Frame::Simple(ifaces.first().map_or(Linktype::ETHERNET, |i| i.0), spb.data));
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(used);
            }
            Err(PcapError::Eof) => return Ok(()),
            Err(PcapError::Incomplete(_)) => {
                stalls += 1;
                if stalls > 1 {
                    // Refilled and still short: the end of the input, or a block larger
                    // than the buffer.
                    if reader.reader_exhausted() || capacity >= MAX_BLOCK_BUFFER {
                        return Err(Stop::Truncated);
                    }
                    capacity *= 2;
                    reader.grow(capacity);
                }
                if reader.refill().is_err() {
                    return Err(Stop::Truncated);
                }
            }
            Err(e) => return Err(Stop::Corrupt(format!("{e:?}"))),
        }
    }
}

/// A frame sliced to its IP packet: Ethernet, Linux cooked v1 and v2, raw IPv4/IPv6, BSD
/// loopback. `None` for other link types and frames etherparse cannot slice.
pub(crate) fn slice(lt: Linktype, frame: &[u8]) -> Option<SlicedPacket<'_>> {
    match lt {
        Linktype::ETHERNET => SlicedPacket::from_ethernet(frame).ok(),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(frame).ok(),
        // Cooked v2 is 20 bytes with the EtherType first.
        Linktype::LINUX_SLL2 => {
            let et = u16::from_be_bytes([*frame.first()?, *frame.get(1)?]);
            SlicedPacket::from_ether_type(et.into(), frame.get(20..)?).ok()
        }
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(frame).ok(),
        // BSD loopback: a 4-byte address family in host order, then IP.
        Linktype::NULL | Linktype::LOOP => SlicedPacket::from_ip(frame.get(4..)?).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::dns::{DnsFormat, ReadOptions, read_as};

    /// A little-endian legacy pcap rewritten as pcapng the way dumpcap writes one: a section
    /// header with hardware, OS and application options (well over 64 bytes), an interface,
    /// enhanced packets.
    fn as_pcapng(legacy: &[u8]) -> Vec<u8> {
        fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
            let len = (12 + body.len().div_ceil(4) * 4) as u32;
            out.extend(kind.to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend(body);
            out.resize(out.len() + (4 - body.len() % 4) % 4, 0);
            out.extend(len.to_le_bytes());
        }
        fn option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
            body.extend(code.to_le_bytes());
            body.extend((value.len() as u16).to_le_bytes());
            body.extend(value);
            body.resize(body.len() + (4 - value.len() % 4) % 4, 0);
        }
        let le32 = |at: usize| u32::from_le_bytes(legacy[at..at + 4].try_into().unwrap());
        let mut out = Vec::new();
        let mut shb = Vec::new();
        shb.extend(0x1a2b_3c4du32.to_le_bytes());
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend((-1i64).to_le_bytes());
        option(&mut shb, 2, b"Intel(R) Xeon(R) CPU @ 2.20GHz (with SSE4.2)");
        option(&mut shb, 3, b"Linux 6.1.0-27-amd64");
        option(&mut shb, 4, b"Dumpcap (Wireshark) 4.0.17 (Git v4.0.17 packaged as 4.0.17-0+deb12u1)");
        option(&mut shb, 0, &[]);
        block(&mut out, 0x0a0d_0d0a, &shb);
        let mut idb = Vec::new();
        idb.extend((le32(20) as u16).to_le_bytes());
        idb.extend(0u16.to_le_bytes());
        idb.extend(le32(16).to_le_bytes());
        block(&mut out, 1, &idb);
        let mut at = 24;
        while at + 16 <= legacy.len() {
            let (secs, micros, caplen, origlen) = (le32(at), le32(at + 4), le32(at + 8), le32(at + 12));
            let data = &legacy[at + 16..at + 16 + caplen as usize];
            let ts = u64::from(secs) * 1_000_000 + u64::from(micros);
            let mut epb = Vec::new();
            epb.extend(0u32.to_le_bytes());
            epb.extend(((ts >> 32) as u32).to_le_bytes());
            epb.extend((ts as u32).to_le_bytes());
            epb.extend(caplen.to_le_bytes());
            epb.extend(origlen.to_le_bytes());
            epb.extend(data);
            epb.resize(epb.len() + (4 - data.len() % 4) % 4, 0);
            block(&mut out, 6, &epb);
            at += 16 + caplen as usize;
        }
        out
    }

    #[test]
    fn a_pcapng_with_a_long_section_header_reads_as_its_legacy_twin() {
        let legacy: &[u8] = include_bytes!("../tests/data/dns/go-dnscollector/dnsdump_udp.pcap");
        let ng = as_pcapng(legacy);
        assert!(
            ng.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a])
                && u32::from_le_bytes(ng[4..8].try_into().unwrap()) > 64
        );
        let (a, rej_a, _) = read_as(legacy, DnsFormat::Pcap, &ReadOptions::default());
        let (b, rej_b, _) = read_as(&ng, DnsFormat::Pcap, &ReadOptions::default());
        assert!(!a.is_empty());
        assert_eq!((a, rej_a.len()), (b, rej_b.len()));
        // Streamed through a reader that returns a few bytes at a time, as a decompressor may.
        let (whole, _) = crate::flow::packets::flows(&ng);
        let mut streamed = Vec::new();
        crate::flow::packets::flows_into(std::io::BufReader::with_capacity(5, &ng[..]), &mut |f| {
            streamed.push(f)
        });
        assert!(!whole.is_empty());
        assert_eq!(whole, streamed);
        assert_eq!(whole, crate::flow::packets::flows(legacy).0);
    }
}
