//! NetFlow v5/v7/v9 and IPFIX packets into [`FlowRecord`]s, on top of `netflow_parser`.
//!
//! The crate does the wire decoding and keeps template caches; this module scopes those caches
//! per exporter (RFC 3954 §5.1: source address + Source ID; RFC 7011 §3.1: + Observation
//! Domain), turns exporter-relative times into absolute ones and counts what it could not use.

use crate::record::FlowRecord;
use botwatch_model::Timestamp;
use netflow_parser::variable_versions::field_value::DurationValue;
use netflow_parser::variable_versions::ipfix::lookup::{IANAIPFixField, IPFixField};
use netflow_parser::variable_versions::{ipfix, v9};
use netflow_parser::{AutoScopedParser, FieldValue, NetflowPacket};
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Seconds from the NTP era (1900) to the Unix epoch; IPFIX micro/nanosecond stamps use NTP.
const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// What a [`Collector`] has seen, cumulative since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Export packets handed to [`Collector::decode`].
    pub packets: u64,
    /// Flow records emitted.
    pub records: u64,
    /// Packets that did not decode (truncated, bad lengths, unknown version, …).
    pub malformed: u64,
    /// Data sets that arrived before (or without) their template and were dropped.
    pub missing_template: u64,
    /// Template and options-template sets learnt.
    pub templates: u64,
    /// Data records that carry no source or destination address (options data, MPLS-only,
    /// layer-2-only templates); they cannot be matched against IP indicators.
    pub records_without_address: u64,
}

/// Why one export packet could not be decoded. The collector goes on either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty packet")]
    Empty,
    #[error("unsupported NetFlow version {0}")]
    UnsupportedVersion(u16),
    #[error("malformed export packet: {0}")]
    Malformed(String),
}

/// v5 and v7 are the same fixed layout in two crate types: one body for both.
macro_rules! fixed_layout {
    ($v:expr, $exporter:expr, $out:expr) => {{
        let h = &$v.header;
        let export = i64::from(h.unix_secs) * 1_000_000 + i64::from(h.unix_nsecs / 1000);
        for f in &$v.flowsets {
            $out.push(FlowRecord {
                start: uptime_to_abs(export, h.sys_up_time, f.first),
                end: uptime_to_abs(export, h.sys_up_time, f.last),
                src: f.src_addr.into(),
                dst: f.dst_addr.into(),
                src_port: f.src_port,
                dst_port: f.dst_port,
                proto: f.protocol_number,
                packets: u64::from(f.d_pkts),
                bytes: u64::from(f.d_octets),
                resp_bytes: None,
                exporter: Some($exporter),
                answered: None,
                local_orig: None,
                local_resp: None,
            });
        }
    }};
}

/// A NetFlow/IPFIX collector: template caches per exporter and counters.
///
/// Not thread-safe by design (one per receiving socket); templates learnt from one exporter
/// never decode another exporter's data.
#[derive(Debug)]
pub struct Collector {
    parser: AutoScopedParser,
    /// IPFIX `systemInitTimeMilliseconds` learnt from options data, per exporter and domain,
    /// for records that only carry sysUpTime-relative times.
    init_time_ms: HashMap<(IpAddr, u32), u64>,
    counters: Counters,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    pub fn new() -> Self {
        Collector {
            parser: AutoScopedParser::new(),
            init_time_ms: HashMap::new(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Decodes one export packet (one UDP payload) from `exporter`, appending its flows to
    /// `out`; returns how many were appended. On error, flows decoded before the bad part
    /// stay in `out` and the packet is counted as malformed.
    pub fn decode(
        &mut self,
        exporter: SocketAddr,
        packet: &[u8],
        out: &mut Vec<FlowRecord>,
    ) -> Result<usize, DecodeError> {
        self.counters.packets += 1;
        let before = out.len();
        if packet.is_empty() {
            self.counters.malformed += 1;
            return Err(DecodeError::Empty);
        }
        let version = if packet.len() >= 2 { u16::from_be_bytes([packet[0], packet[1]]) } else { 0 };
        if !matches!(version, 5 | 7 | 9 | 10) {
            self.counters.malformed += 1;
            return Err(DecodeError::UnsupportedVersion(version));
        }
        // An exporter that restarts picks a new source port but keeps its templates' meaning
        // per (address, Source ID); keying on the port would strand the data behind a
        // template the collector already has.
        let key = SocketAddr::new(exporter.ip(), 0);
        let result = self.parser.parse_from_source(key, packet);
        for p in &result.packets {
            self.packet(exporter.ip(), p, out);
        }
        let n = out.len() - before;
        self.counters.records += n as u64;
        match result.error {
            Some(e) => {
                self.counters.malformed += 1;
                Err(DecodeError::Malformed(e.to_string()))
            }
            // The parser stops quietly on a header it cannot read at all.
            None if result.packets.is_empty() => {
                self.counters.malformed += 1;
                Err(DecodeError::Malformed("no decodable export packet".into()))
            }
            None => Ok(n),
        }
    }

    fn packet(&mut self, exporter: IpAddr, p: &NetflowPacket, out: &mut Vec<FlowRecord>) {
        match p {
            NetflowPacket::V5(v) => fixed_layout!(v, exporter, out),
            NetflowPacket::V7(v) => fixed_layout!(v, exporter, out),
            NetflowPacket::V9(v) => {
                let ctx = TimeCtx {
                    export_us: i64::from(v.header.unix_secs) * 1_000_000,
                    sys_up_time: Some(v.header.sys_up_time),
                    init_ms: None,
                };
                for set in &v.flowsets {
                    match &set.body {
                        v9::FlowSetBody::Data(d) => {
                            for rec in &d.fields {
                                let mut acc = Fields::default();
                                for (f, val) in rec {
                                    acc.set(u16::from(*f), val);
                                }
                                self.emit(acc, &ctx, exporter, out);
                            }
                        }
                        v9::FlowSetBody::Template(t) => self.counters.templates += t.templates.len() as u64,
                        v9::FlowSetBody::OptionsTemplate(t) => {
                            self.counters.templates += t.templates.len() as u64
                        }
                        v9::FlowSetBody::NoTemplate(_) => self.counters.missing_template += 1,
                        v9::FlowSetBody::OptionsData(_) | v9::FlowSetBody::Empty => {}
                    }
                }
            }
            NetflowPacket::IPFix(x) => {
                let domain = x.header.observation_domain_id;
                let mut ctx = TimeCtx {
                    export_us: i64::from(x.header.export_time) * 1_000_000,
                    sys_up_time: None,
                    init_ms: self.init_time_ms.get(&(exporter, domain)).copied(),
                };
                for set in &x.flowsets {
                    use ipfix::FlowSetBody as B;
                    match &set.body {
                        B::Data(d) => self.ipfix_records(&d.fields, &ctx, exporter, out),
                        B::V9Data(d) => {
                            for rec in &d.fields {
                                let mut acc = Fields::default();
                                for (f, val) in rec {
                                    acc.set(u16::from(*f), val);
                                }
                                self.emit(acc, &ctx, exporter, out);
                            }
                        }
                        B::OptionsData(d) => {
                            for rec in &d.fields {
                                for (f, val) in rec {
                                    if *f == IPFixField::IANA(IANAIPFixField::SystemInitTimeMilliseconds)
                                        && let Some(ms) = val.as_u64()
                                    {
                                        self.init_time_ms.insert((exporter, domain), ms);
                                        ctx.init_ms = Some(ms);
                                    }
                                }
                            }
                        }
                        B::Template(_)
                        | B::V9Template(_)
                        | B::OptionsTemplate(_)
                        | B::V9OptionsTemplate(_) => self.counters.templates += 1,
                        B::Templates(t) => self.counters.templates += t.len() as u64,
                        B::V9Templates(t) => self.counters.templates += t.len() as u64,
                        B::OptionsTemplates(t) => self.counters.templates += t.len() as u64,
                        B::V9OptionsTemplates(t) => self.counters.templates += t.len() as u64,
                        B::NoTemplate(_) => self.counters.missing_template += 1,
                        B::V9OptionsData(_) | B::Empty => {}
                    }
                }
            }
            // The enum is non-exhaustive; a future version would need mapping here first.
            _ => {}
        }
    }

    fn ipfix_records(
        &mut self,
        recs: &[ipfix::IPFixFlowRecord],
        ctx: &TimeCtx,
        exporter: IpAddr,
        out: &mut Vec<FlowRecord>,
    ) {
        for rec in recs {
            let mut acc = Fields::default();
            for (f, val) in rec {
                if let IPFixField::IANA(ie) = f
                    && let Some(id) = iana_id(*ie)
                {
                    acc.set(id, val);
                }
            }
            self.emit(acc, ctx, exporter, out);
        }
    }

    fn emit(&mut self, f: Fields, ctx: &TimeCtx, exporter: IpAddr, out: &mut Vec<FlowRecord>) {
        match f.finish(ctx, exporter) {
            Some(r) => out.push(r),
            None => self.counters.records_without_address += 1,
        }
    }
}

/// The information elements botwatch reads, by IANA id (v9 shares ids 1–127 and 150–160).
fn iana_id(ie: IANAIPFixField) -> Option<u16> {
    use IANAIPFixField as F;
    Some(match ie {
        F::OctetDeltaCount => 1,
        F::PacketDeltaCount => 2,
        F::ProtocolIdentifier => 4,
        F::SourceTransportPort => 7,
        F::SourceIpv4address => 8,
        F::DestinationTransportPort => 11,
        F::DestinationIpv4address => 12,
        F::FlowEndSysUpTime => 21,
        F::FlowStartSysUpTime => 22,
        F::SourceIpv6address => 27,
        F::IcmpTypeCodeIpv4 => 32,
        F::IcmpTypeCodeIpv6 => 139,
        F::DestinationIpv6address => 28,
        F::OctetTotalCount => 85,
        F::PacketTotalCount => 86,
        F::FlowStartSeconds => 150,
        F::FlowEndSeconds => 151,
        F::FlowStartMilliseconds => 152,
        F::FlowEndMilliseconds => 153,
        F::FlowStartMicroseconds => 154,
        F::FlowEndMicroseconds => 155,
        F::FlowStartNanoseconds => 156,
        F::FlowEndNanoseconds => 157,
        F::FlowStartDeltaMicroseconds => 158,
        F::FlowEndDeltaMicroseconds => 159,
        F::SystemInitTimeMilliseconds => 160,
        _ => return None,
    })
}

/// What a packet header says about time.
struct TimeCtx {
    export_us: i64,
    /// v9 header sysUpTime (ms) at `export_us`.
    sys_up_time: Option<u32>,
    /// IPFIX systemInitTimeMilliseconds (absolute ms) learnt from options data.
    init_ms: Option<u64>,
}

#[derive(Default)]
struct Fields {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    src_port: u16,
    dst_port: u16,
    proto: u8,
    /// ICMP type × 256 + code.
    icmp: Option<u16>,
    bytes: Option<u64>,
    total_bytes: Option<u64>,
    packets: Option<u64>,
    total_packets: Option<u64>,
    /// Absolute µs since the epoch.
    abs_start: Option<i64>,
    abs_end: Option<i64>,
    /// ms of exporter uptime.
    up_start: Option<u64>,
    up_end: Option<u64>,
    /// µs before export time.
    delta_start: Option<u64>,
    delta_end: Option<u64>,
    init_ms: Option<u64>,
}

impl Fields {
    fn set(&mut self, id: u16, v: &FieldValue) {
        match id {
            1 => self.bytes = v.as_u64(),
            2 => self.packets = v.as_u64(),
            4 => self.proto = v.as_u8().unwrap_or(0),
            7 => self.src_port = v.as_u16().unwrap_or(0),
            11 => self.dst_port = v.as_u16().unwrap_or(0),
            // Templates with both v4 and v6 address fields fill the unused family with zeros.
            8 | 27 => self.src = better(self.src, ip(v)),
            12 | 28 => self.dst = better(self.dst, ip(v)),
            32 | 139 => self.icmp = v.as_u16(),
            21 => self.up_end = v.as_u64(),
            22 => self.up_start = v.as_u64(),
            85 => self.total_bytes = v.as_u64(),
            86 => self.total_packets = v.as_u64(),
            150 | 152 | 154 | 156 => self.abs_start = abs_us(v),
            151 | 153 | 155 | 157 => self.abs_end = abs_us(v),
            158 => self.delta_start = v.as_u64(),
            159 => self.delta_end = v.as_u64(),
            160 => self.init_ms = v.as_u64(),
            _ => {}
        }
    }

    fn finish(self, ctx: &TimeCtx, exporter: IpAddr) -> Option<FlowRecord> {
        let (src, dst) = (self.src?, self.dst?);
        let init_ms = self.init_ms.or(ctx.init_ms);
        let time = |abs: Option<i64>, up: Option<u64>, delta: Option<u64>| -> Option<i64> {
            if let Some(t) = abs {
                return Some(t);
            }
            if let Some(up) = up {
                if let Some(init) = init_ms {
                    return i64::try_from(init.saturating_add(up)).ok()?.checked_mul(1000);
                }
                if let Some(now_up) = ctx.sys_up_time {
                    // v9 FirstSwitched/LastSwitched are 32-bit uptime ms.
                    return Some(uptime_to_abs(ctx.export_us, now_up, up as u32).0);
                }
            }
            delta.and_then(|d| ctx.export_us.checked_sub(i64::try_from(d).ok()?))
        };
        let start = time(self.abs_start, self.up_start, self.delta_start);
        let end = time(self.abs_end, self.up_end, self.delta_end);
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) => (s, e),
            (Some(s), None) => (s, s),
            (None, Some(e)) => (e, e),
            (None, None) => (ctx.export_us, ctx.export_us),
        };
        // v5 and nfdump carry ICMP type/code in the destination port; v9/IPFIX exporters
        // may send it in its own element instead. One convention for matching.
        let dst_port = match self.icmp {
            Some(tc) if self.dst_port == 0 && matches!(self.proto, 1 | 58) => tc,
            _ => self.dst_port,
        };
        Some(FlowRecord {
            start: Timestamp(start),
            end: Timestamp(end),
            src,
            dst,
            src_port: self.src_port,
            dst_port,
            proto: self.proto,
            packets: self.packets.or(self.total_packets).unwrap_or(0),
            bytes: self.bytes.or(self.total_bytes).unwrap_or(0),
            resp_bytes: None,
            exporter: Some(exporter),
            answered: None,
            local_orig: None,
            local_resp: None,
        })
    }
}

fn better(old: Option<IpAddr>, new: Option<IpAddr>) -> Option<IpAddr> {
    match (old, new) {
        (Some(o), Some(n)) if n.is_unspecified() && !o.is_unspecified() => Some(o),
        (o, None) => o,
        (_, n) => n,
    }
}

fn ip(v: &FieldValue) -> Option<IpAddr> {
    match v {
        FieldValue::Ip4Addr(a) => Some(IpAddr::V4(*a)),
        FieldValue::Ip6Addr(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// Absolute IPFIX time stamps in µs since the Unix epoch.
fn abs_us(v: &FieldValue) -> Option<i64> {
    let FieldValue::Duration(d) = v else {
        return v.as_u64().and_then(|ms| i64::try_from(ms).ok()?.checked_mul(1000));
    };
    let us = i64::try_from(d.as_duration().as_micros()).ok()?;
    match d {
        DurationValue::MicrosNtp { .. } | DurationValue::NanosNtp { .. } => {
            Some(us - NTP_UNIX_OFFSET_SECS * 1_000_000)
        }
        _ => Some(us),
    }
}

/// A sysUpTime-relative stamp (ms) to absolute time, given the header's uptime at export.
/// The difference is taken modulo 2³² so an uptime counter that wrapped (every ~49.7 days)
/// between flow start and export still gives the right instant.
fn uptime_to_abs(export_us: i64, up_now: u32, up_then: u32) -> Timestamp {
    let ago_ms = i64::from(up_now.wrapping_sub(up_then) as i32);
    Timestamp(export_us - ago_ms * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_wraps() {
        assert_eq!(uptime_to_abs(10_000_000, 5_000, 4_000), Timestamp(9_000_000));
        // Flow started 1 s before a wrap, exported 1 s after it.
        assert_eq!(uptime_to_abs(10_000_000, 1_000, u32::MAX - 999), Timestamp(8_000_000));
        // A flow stamped a little after the header (clock skew) lies in the future.
        assert_eq!(uptime_to_abs(10_000_000, 4_000, 5_000), Timestamp(11_000_000));
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let mut c = Collector::new();
        let mut out = Vec::new();
        let ex: SocketAddr = "192.0.2.1:2055".parse().unwrap();
        assert!(c.decode(ex, &[], &mut out).is_err());
        assert!(c.decode(ex, &[0, 9, 0, 1], &mut out).is_err());
        assert!(c.decode(ex, &[0, 5, 0, 30, 1, 2, 3], &mut out).is_err());
        assert!(c.decode(ex, &[0x47, 0x45, 0x54, 0x20], &mut out).is_err());
        assert_eq!(c.counters().malformed, 4);
        assert_eq!(c.counters().packets, 4);
        assert!(out.is_empty());
    }
}
