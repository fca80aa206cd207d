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
/// gzipped capture read as it expands) does not meet; and with the header bytes read in full
/// first, since a decompressor's first read may return fewer bytes than a header.
fn open<'a, R: Read + 'a>(capacity: usize, mut input: R) -> Result<Box<dyn PcapReaderIterator + 'a>, String> {
    const NG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    let mut head = Vec::with_capacity(64);
    (&mut input).take(64).read_to_end(&mut head).map_err(|e| format!("{e}"))?;
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
