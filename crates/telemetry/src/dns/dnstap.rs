//! dnstap (dnstap.info): protobuf messages inside Frame Streams.
//!
//! The structs below are the subset of `dnstap.proto` (github.com/dnstap/dnstap.pb) that
//! botwatch reads, declared for prost with the schema's own field numbers; unknown fields
//! (policy, extended HTTP fields) are skipped by prost. Enumerations are kept as `i32` so a
//! value newer than this schema is counted, not a decode error.

use super::pair::Pairer;
use super::{DnsSink, Stats, fstrm, reject, wire};
use botwatch_model::Timestamp;
use prost::Message as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `Dnstap` (top-level frame payload).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// `Dnstap.Type`: 1 = MESSAGE.
    #[prost(int32, optional, tag = "15")]
    pub r#type: Option<i32>,
}

/// `Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// `Message.Type`: see [`CLIENT_QUERY`], [`CLIENT_RESPONSE`].
    #[prost(int32, optional, tag = "1")]
    pub r#type: Option<i32>,
    /// `SocketFamily`: 1 INET, 2 INET6.
    #[prost(int32, optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// `SocketProtocol`: 1 UDP, 2 TCP, 3 DOT, 4 DOH, …
    #[prost(int32, optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
}

pub const CLIENT_QUERY: i32 = 5;
pub const CLIENT_RESPONSE: i32 = 6;

fn time(sec: Option<u64>, nsec: Option<u32>) -> Option<Timestamp> {
    let us = i64::try_from(sec?).ok()?.checked_mul(1_000_000)?;
    Some(Timestamp(us.checked_add(i64::from(nsec.unwrap_or(0).min(999_999_999) / 1000))?))
}

fn addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

/// Decodes one data-frame payload and feeds the pairer; `n` numbers the frame for rejects.
pub(crate) fn handle_payload(
    payload: &[u8],
    n: u64,
    pairer: &mut Pairer,
    out: &mut dyn DnsSink,
    stats: &mut Stats,
) {
    let d = match Dnstap::decode(payload) {
        Ok(d) => d,
        Err(e) => return out.reject(reject(n, payload, format!("dnstap protobuf: {e}"))),
    };
    let Some(m) = d.message else {
        stats.messages_skipped += 1;
        return;
    };
    let is_query = match m.r#type {
        Some(CLIENT_QUERY) => true,
        Some(CLIENT_RESPONSE) => false,
        _ => {
            stats.messages_skipped += 1;
            return;
        }
    };
    let Some(client) = m.query_address.as_deref().and_then(addr) else {
        return out.reject(reject(n, payload, "dnstap client message without a valid query_address"));
    };
    let port = m.query_port.and_then(|p| u16::try_from(p).ok());
    let qt = time(m.query_time_sec, m.query_time_nsec);
    let (wire_msg, t) = if is_query {
        (m.query_message.as_deref(), qt)
    } else {
        (m.response_message.as_deref(), qt.or_else(|| time(m.response_time_sec, m.response_time_nsec)))
    };
    let Some(wire_msg) = wire_msg else {
        let what = if is_query {
            "CLIENT_QUERY without query_message"
        } else {
            "CLIENT_RESPONSE without response_message"
        };
        return out.reject(reject(n, payload, what));
    };
    let Some(t) = t else {
        return out.reject(reject(n, payload, "dnstap message without a time"));
    };
    match wire::decode(wire_msg) {
        Ok(s) if is_query => pairer.query(s, t, client, port, out, stats),
        Ok(s) => pairer.response(s, t, client, port, out, stats),
        Err(e) => out.reject(reject(n, payload, e)),
    }
}

/// A whole Frame Streams file. Frames are numbered from 1 in rejects; a corrupt length
/// ends the file (nothing after it can be framed) as one reject holding the tail.
pub(crate) fn read_file(bytes: &[u8], out: &mut dyn DnsSink, stats: &mut Stats) {
    read_file_from(bytes, out, stats)
}

/// A Frame Streams file from `input`, through a buffer that holds the frame being read (at
/// most [`fstrm::MAX_DATA_FRAME`] and a read's worth): a file of any size.
pub(crate) fn read_file_from<R: std::io::Read>(mut input: R, out: &mut dyn DnsSink, stats: &mut Stats) {
    let mut pairer = Pairer::default();
    let mut buf: Vec<u8> = Vec::new();
    let (mut pos, mut n, mut eof) = (0, 0u64, false);
    loop {
        if pos == buf.len() && eof {
            break;
        }
        let parsed = fstrm::parse_frame(&buf[pos..], fstrm::MAX_DATA_FRAME);
        match parsed {
            Ok(Some((frame, used))) => {
                n += 1;
                stats.frames += 1;
                match frame {
                    fstrm::Frame::Data(p) => handle_payload(p, n, &mut pairer, out, stats),
                    fstrm::Frame::Control { kind, content_types } => {
                        stats.control_frames += 1;
                        if kind == fstrm::START
                            && !content_types.is_empty()
                            && !content_types.contains(&fstrm::CONTENT_TYPE)
                        {
                            out.reject(reject(
                                n,
                                &buf[pos..pos + used],
                                "START frame is not protobuf:dnstap",
                            ));
                        }
                    }
                }
                pos += used;
            }
            Ok(None) if !eof => {
                // More bytes: keep the frame begun, read on.
                buf.drain(..pos);
                pos = 0;
                let have = buf.len();
                buf.resize(have + (256 << 10), 0);
                match input.read(&mut buf[have..]) {
                    Ok(0) => {
                        buf.truncate(have);
                        eof = true;
                    }
                    Ok(k) => buf.truncate(have + k),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(have),
                    Err(e) => {
                        buf.truncate(have);
                        out.reject(reject(n + 1, &[], format!("reading stopped: {e}")));
                        break;
                    }
                }
            }
            Ok(None) => {
                out.reject(reject(n + 1, &buf[pos..], "truncated frame at end of file"));
                break;
            }
            Err(e) => {
                out.reject(reject(n + 1, &buf[pos..], format!("corrupt Frame Streams data: {e}")));
                break;
            }
        }
    }
    pairer.finish(out, stats);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Collected;

    #[test]
    fn garbage_protobuf_and_missing_fields_are_rejects() {
        let mut out = Collected::default();
        let mut stats = Stats::default();
        let mut p = Pairer::default();
        handle_payload(&[0xff, 0xff, 0xff], 1, &mut p, &mut out, &mut stats);
        let m = Dnstap {
            r#type: Some(1),
            message: Some(Message { r#type: Some(CLIENT_QUERY), ..Default::default() }),
            ..Default::default()
        };
        handle_payload(&m.encode_to_vec(), 2, &mut p, &mut out, &mut stats);
        let resolver =
            Dnstap { message: Some(Message { r#type: Some(3), ..Default::default() }), ..Default::default() };
        handle_payload(&resolver.encode_to_vec(), 3, &mut p, &mut out, &mut stats);
        assert_eq!(out.rejects.iter().map(|r| r.line).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(stats.messages_skipped, 1);
        assert!(out.records.is_empty());
    }

    #[test]
    fn time_overflow_is_none() {
        assert_eq!(time(Some(u64::MAX), None), None);
        assert_eq!(time(Some(1), Some(2_000)), Some(Timestamp(1_000_002)));
    }
}
