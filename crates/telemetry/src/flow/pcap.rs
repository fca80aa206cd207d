//! Replaying captured NetFlow/IPFIX export traffic from pcap or pcapng files.
//!
//! Frames are read with `pcap-parser`, sliced to their UDP payload with `etherparse`
//! (Ethernet, Linux cooked v1/v2, raw IPv4/IPv6, BSD loopback link types) and fed to a
//! [`Collector`] with the frame's source address as the exporter, in capture order, so a
//! template that was captured before its data decodes it.

use super::netflow::{Collector, DecodeError};
use crate::record::FlowRecord;
use botwatch_model::Reject;
use bytes::Bytes;
use etherparse::{NetSlice, TransportSlice};
use pcap_parser::Linktype;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// The default export ports: NetFlow (2055, 9995, 9996) and IPFIX (4739). sFlow (6343) is a
/// different protocol and never tried.
pub const DEFAULT_PORTS: &[u16] = &[2055, 9995, 9996, 4739];
const SFLOW_PORT: u16 = 6343;

/// Which UDP datagrams are export packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortFilter {
    /// Only datagrams to these destination ports.
    Ports(Vec<u16>),
    /// Every datagram (except to sFlow's port, and DNS) whose first two bytes are a NetFlow/IPFIX
    /// version; captures made on a lab port (the shipped samples use 29055) need this.
    Any,
}

impl Default for PortFilter {
    fn default() -> Self {
        PortFilter::Ports(DEFAULT_PORTS.to_vec())
    }
}

/// What one replay saw, besides the collector's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PcapStats {
    pub frames: u64,
    /// Frames that were not UDP over IP (or whose link type is not supported).
    pub not_udp: u64,
    /// UDP datagrams left out by the port filter or not starting with a flow version.
    pub not_flow: u64,
    /// Datagrams given to the collector.
    pub export_packets: u64,
    /// The file ended inside a frame or a block could not be read; replay stopped there.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    #[error("not a pcap or pcapng file")]
    NotPcap,
}

/// Whether `data` starts like a pcap (either byte order, µs or ns) or pcapng file.
pub fn is_pcap(data: &[u8]) -> bool {
    matches!(
        data.get(..4),
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0xc3, 0xd4]
                | [0x4d, 0x3c, 0xb2, 0xa1]
                | [0xa1, 0xb2, 0x3c, 0x4d]
        )
    ) || is_pcapng(data)
}

fn is_pcapng(data: &[u8]) -> bool {
    data.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a])
}

/// Replays a capture through `collector`, appending flows to `out`. A datagram that fails to
/// decode becomes a reject whose line is the 1-based frame number. [`replay_from`] over the
/// bytes: one frame walker for both (pcap-parser's streaming reader, either byte order).
pub fn replay(
    data: &[u8],
    collector: &mut Collector,
    filter: &PortFilter,
    out: &mut Vec<FlowRecord>,
    rejects: &mut Vec<Reject>,
) -> Result<PcapStats, PcapError> {
    if !is_pcap(data) {
        return Err(PcapError::NotPcap);
    }
    replay_from(data, collector, filter, &mut |r| out.push(r), &mut |r| rejects.push(r))
}

/// [`replay`] of a capture read from `input` through one buffer, each flow handed to `sink`
/// as its datagram is decoded and each reject to `rejected`: a capture of any size.
pub fn replay_from<R: std::io::Read>(
    input: R,
    collector: &mut Collector,
    filter: &PortFilter,
    sink: &mut dyn FnMut(FlowRecord),
    rejected: &mut dyn FnMut(Reject),
) -> Result<PcapStats, PcapError> {
    use crate::capture::{Frame, Stop};
    let mut st = PcapStats::default();
    let mut out = Vec::new();
    let ended = crate::capture::each_frame(input, |frame| {
        let (lt, data) = match frame {
            Frame::Packet(lt, data, _) | Frame::Simple(lt, data) => (lt, data),
            Frame::Undeclared(data) => (Linktype(-1), data),
        };
        feed_frame(lt, data, &mut st, collector, filter, &mut out, rejected);
        for r in out.drain(..) {
            sink(r);
        }
    });
    match ended {
        Ok(()) => {}
        Err(Stop::Header(_)) => return Err(PcapError::NotPcap),
        Err(Stop::Truncated | Stop::Corrupt(_)) => st.truncated = true,
    }
    Ok(st)
}

/// One frame of a capture: its UDP datagram, when it looks like a flow export, through the
/// collector.
fn feed_frame(
    linktype: Linktype,
    frame: &[u8],
    st: &mut PcapStats,
    collector: &mut Collector,
    filter: &PortFilter,
    out: &mut Vec<FlowRecord>,
    rejected: &mut dyn FnMut(Reject),
) {
    st.frames += 1;
    let Some((exporter, port, payload)) = udp_payload(linktype, frame) else {
        st.not_udp += 1;
        return;
    };
    let wanted = match filter {
        PortFilter::Ports(p) => p.contains(&port),
        PortFilter::Any => {
            // DNS to or from port 53: a message id of 5, 7, 9 or 10 looks like a version.
            port != SFLOW_PORT
                && port != 53
                && exporter.port() != 53
                && payload.len() >= 2
                && matches!(u16::from_be_bytes([payload[0], payload[1]]), 5 | 7 | 9 | 10)
        }
    };
    if !wanted {
        st.not_flow += 1;
        return;
    }
    st.export_packets += 1;
    if let Err(e) = collector.decode(exporter, payload, out) {
        rejected(reject(st.frames, payload, &e));
    }
}

fn reject(frame: u64, payload: &[u8], e: &DecodeError) -> Reject {
    Reject { line: frame, raw: Bytes::copy_from_slice(payload), reason: e.to_string() }
}

/// The exporter (source address and port), the destination port and the UDP payload.
fn udp_payload(linktype: Linktype, frame: &[u8]) -> Option<(SocketAddr, u16, &[u8])> {
    let sliced = crate::capture::slice(linktype, frame)?;
    let src: IpAddr = match sliced.net.as_ref()? {
        NetSlice::Ipv4(v4) => v4.header().source_addr().into(),
        NetSlice::Ipv6(v6) => v6.header().source_addr().into(),
        _ => return None,
    };
    match sliced.transport? {
        TransportSlice::Udp(u) => {
            Some((SocketAddr::new(src, u.source_port()), u.destination_port(), u.payload()))
        }
        _ => None,
    }
}
