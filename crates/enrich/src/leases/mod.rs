//! Parsers for the logs that say who held an address: DHCP leases (ISC dhcpd, Kea), RADIUS
//! accounting (FreeRADIUS `detail` files) and CGNAT port-block allocations (Juniper syslog,
//! a plain CSV).
//!
//! Like the feed parsers these are pure — bytes in, [`LeaseRecord`]s and [`Reject`]s out —
//! and never panic: a malformed line or block is a reject with its line number, raw bytes
//! and reason, and the rest of the file goes on. Each parser also applies its format's own
//! rules for records that supersede each other (a later dhcpd declaration for an address
//! replaces the earlier one; RADIUS Stop closes its Start), so what comes out is intervals.
//!
//! ```
//! use botwatch_enrich::leases::{self, Format};
//! let csv = b"time,event,inside_ip,public_ip,port_start,port_end,subscriber\n\
//!             2026-11-24T10:00:00Z,alloc,100.64.0.7,198.51.100.1,1024,1151,line-7\n";
//! let (records, rejects, format) = leases::parse(csv, "nat.csv").unwrap();
//! assert_eq!(format, Format::CgnatCsv);
//! assert_eq!(records[0].ports, Some((1024, 1151)));
//! assert!(rejects.is_empty());
//! ```

pub mod cgnat;
pub mod dhcpd;
pub mod kea;
pub mod radius;

pub use botwatch_model::{LeaseRecord, Reject};
use bytes::Bytes;
use serde::Serialize;

/// The formats understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// ISC dhcpd `dhcpd.leases` (dhcpd.leases(5)).
    Dhcpd,
    /// Kea memfile lease file, DHCPv4 (`kea-leases4.csv`).
    KeaV4,
    /// Kea memfile lease file, DHCPv6 (`kea-leases6.csv`).
    KeaV6,
    /// FreeRADIUS `detail` accounting file.
    RadiusDetail,
    /// Juniper `JSERVICES_NAT_PORT_BLOCK_*` syslog lines.
    JuniperPba,
    /// `time,event,inside_ip,public_ip,port_start,port_end,subscriber`.
    CgnatCsv,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Dhcpd,
        Format::KeaV4,
        Format::KeaV6,
        Format::RadiusDetail,
        Format::JuniperPba,
        Format::CgnatCsv,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dhcpd => "dhcpd",
            Format::KeaV4 => "kea4",
            Format::KeaV6 => "kea6",
            Format::RadiusDetail => "radius_detail",
            Format::JuniperPba => "juniper_pba",
            Format::CgnatCsv => "cgnat_csv",
        }
    }

    pub fn from_name(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{name}: not a lease, accounting or port-block log botwatch recognises")]
pub struct UnknownFormat {
    pub name: String,
}

/// Recognises the format from the first few KiB.
pub fn detect(data: &[u8]) -> Option<Format> {
    let head = &data[..data.len().min(16 * 1024)];
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}');
    if text.contains("JSERVICES_NAT_PORT_BLOCK_") {
        return Some(Format::JuniperPba);
    }
    let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
    let cols: Vec<&str> = first.split(',').map(str::trim).collect();
    if cols.len() >= 3 && cols[0] == "address" {
        if cols.contains(&"duid") && cols.contains(&"lease_type") {
            return Some(Format::KeaV6);
        }
        if cols.contains(&"hwaddr") && cols.contains(&"expire") {
            return Some(Format::KeaV4);
        }
    }
    if ["inside_ip", "public_ip", "port_start", "port_end"].iter().all(|c| cols.contains(c)) {
        return Some(Format::CgnatCsv);
    }
    if text.contains("dhcpd.leases(5)")
        || first.starts_with("lease ")
        || first.starts_with("authoring-byte-order")
        || first.starts_with("server-duid")
        || first.starts_with("failover peer")
    {
        return Some(Format::Dhcpd);
    }
    if radius::header_time(first.as_bytes()).is_some()
        && text.lines().nth(1).is_some_and(|l| l.starts_with(['\t', ' ']) && l.contains(" = "))
    {
        return Some(Format::RadiusDetail);
    }
    None
}

/// Detects the format and parses. `name` (the file name) goes into each record's `source`.
pub fn parse(data: &[u8], name: &str) -> Result<(Vec<LeaseRecord>, Vec<Reject>, Format), UnknownFormat> {
    let f = detect(data).ok_or_else(|| UnknownFormat { name: name.to_string() })?;
    let (r, j) = parse_as(f, data, name);
    Ok((r, j, f))
}

/// Parses `data` as `format`.
pub fn parse_as(format: Format, data: &[u8], name: &str) -> (Vec<LeaseRecord>, Vec<Reject>) {
    let source = format!("{}:{name}", format.as_str());
    let mut out = Parsed { records: Vec::new(), rejects: Vec::new(), source };
    match format {
        Format::Dhcpd => dhcpd::parse(data, &mut out),
        Format::KeaV4 => kea::parse(data, false, &mut out),
        Format::KeaV6 => kea::parse(data, true, &mut out),
        Format::RadiusDetail => radius::parse(data, &mut out),
        Format::JuniperPba => cgnat::parse_juniper(data, &mut out),
        Format::CgnatCsv => cgnat::parse_csv(data, &mut out),
    }
    out.records.sort_by(|a, b| a.line.cmp(&b.line).then(a.ip.cmp(&b.ip)));
    (out.records, out.rejects)
}

/// What a parser fills.
pub(crate) struct Parsed {
    pub records: Vec<LeaseRecord>,
    pub rejects: Vec<Reject>,
    pub source: String,
}

impl Parsed {
    pub fn reject(&mut self, line: u64, raw: &[u8], reason: impl Into<String>) {
        self.rejects.push(Reject { line, raw: Bytes::copy_from_slice(raw), reason: reason.into() });
    }
}

/// Lines with their 1-based numbers, without the line terminator (`\n` or `\r\n`).
pub(crate) fn lines(data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let data = data.strip_suffix(b"\n").unwrap_or(data);
    data.split(|&c| c == b'\n')
        .enumerate()
        .filter(move |_| !data.is_empty())
        .map(|(i, l)| (i as u64 + 1, l.strip_suffix(b"\r").unwrap_or(l)))
}

/// Seconds since the epoch of a UTC civil time, `None` when out of range.
pub(crate) fn civil(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(y).ok()?, mo, d)?;
    Some(date.and_hms_opt(h, mi, s)?.and_utc().timestamp())
}

pub(crate) fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, &c| n * 10 + (c - b'0') as u32))
}

pub(crate) fn month(b: &[u8]) -> Option<u32> {
    const M: [&[u8]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    M.iter().position(|m| m.eq_ignore_ascii_case(b)).map(|i| i as u32 + 1)
}

/// `HH:MM:SS`.
pub(crate) fn hms(b: &[u8]) -> Option<(u32, u32, u32)> {
    let mut it = b.split(|&c| c == b':');
    let (h, m, s) = (num(it.next()?)?, num(it.next()?)?, num(it.next()?)?);
    if it.next().is_some() || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some((h, m, s.min(59)))
}

/// The host prefix of an address.
pub(crate) fn host(ip: std::net::IpAddr) -> ipnet::IpNet {
    ipnet::IpNet::from(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_recognises_each_format_and_nothing_else() {
        let cases: [(&[u8], Option<Format>); 8] = [
            (b"# The format of this file is documented in the dhcpd.leases(5) manual page.\nlease 10.0.0.1 {\n}\n", Some(Format::Dhcpd)),
            (b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n", Some(Format::KeaV4)),
            (b"address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len\n", Some(Format::KeaV6)),
            (b"Tue Nov 24 10:00:00 2026\n\tAcct-Status-Type = Start\n", Some(Format::RadiusDetail)),
            (b"Nov 24 10:00:00 r1 {ss}[jservices-nat]: JSERVICES_NAT_PORT_BLOCK_ALLOC: 10.0.0.1 -> 1.2.3.4:1024-1151 0x5\n", Some(Format::JuniperPba)),
            (b"time,event,inside_ip,public_ip,port_start,port_end,subscriber\n", Some(Format::CgnatCsv)),
            (b"ip,asn\n1.2.3.4,5\n", None),
            (b"", None),
        ];
        for (data, want) in cases {
            assert_eq!(detect(data), want, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn lines_numbers_and_terminators() {
        let v: Vec<_> = lines(b"a\r\nb\n\nc").collect();
        assert_eq!(v, [(1, &b"a"[..]), (2, b"b"), (3, b""), (4, b"c")]);
        assert_eq!(lines(b"").count(), 0);
    }
}

/// Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/leases_*.rs`) and the
/// corpus replay test, so both exercise exactly the same code.
pub mod fuzzing {
    use super::{Format, detect, parse_as};
    use crate::subscriber::SubscriberIndex;
    use botwatch_model::Timestamp;

    /// Target names; each has a corpus folder `fuzz/corpus/<name>/`.
    pub const TARGETS: [&str; 7] = [
        "leases_dhcpd",
        "leases_kea4",
        "leases_kea6",
        "leases_radius",
        "leases_juniper",
        "leases_cgnat_csv",
        "leases_detect",
    ];

    /// Parses `data` as the target's format (or as whatever it is detected as), then builds
    /// an index from the records and asks it about every record's first instant.
    pub fn run(target: &str, data: &[u8]) {
        let format = match target {
            "leases_dhcpd" => Some(Format::Dhcpd),
            "leases_kea4" => Some(Format::KeaV4),
            "leases_kea6" => Some(Format::KeaV6),
            "leases_radius" => Some(Format::RadiusDetail),
            "leases_juniper" => Some(Format::JuniperPba),
            "leases_cgnat_csv" => Some(Format::CgnatCsv),
            _ => detect(data),
        };
        let Some(format) = format else { return };
        let (records, rejects) = parse_as(format, data, "fuzz");
        for r in &rejects {
            assert!(r.line > 0 && !r.reason.is_empty());
        }
        let probes: Vec<_> = records.iter().map(|r| (r.ip.addr(), r.ports.map(|p| p.0), r.start)).collect();
        let idx = SubscriberIndex::build(records);
        for (ip, port, t) in probes {
            let _ = idx.attribute(ip, port, t);
            let _ = idx.attribute(ip, None, Timestamp(t.0.saturating_sub(1)));
        }
    }
}
