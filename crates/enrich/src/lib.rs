//! Offline enrichment: IP address → ASN, AS organisation and country.
//!
//! Tables come from ip-location-db's range files (CC BY 4.0; see `data/CREDITS.md`), shipped
//! inside the binary so enrichment works offline with no setup; `IpDb::load_dir` reads a
//! newer copy. Lookups are a binary search over disjoint segments: no network, no
//! allocation, tens of nanoseconds, so they sit on the ingest hot path.
//!
//! Also here: [`owners`] (constituencies: which organisation answers for an address),
//! [`leases`] (DHCP, RADIUS and CGNAT log parsers) and [`subscriber`] (who held an address and
//! port at an instant).
//!
//! ```
//! let db = botwatch_enrich::IpDb::builtin();
//! let info = db.lookup("1.0.0.1".parse().unwrap()).unwrap();
//! assert_eq!(info.asn, Some(13335));
//! ```

pub mod leases;
pub mod owners;
pub mod ranges;
pub mod subscriber;

use botwatch_model::{Endpoint, Event, Text};
use ranges::{RangeBuilder, RangeTable};
use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Attribution to print wherever enrichment results are shown.
pub const CREDIT: &str =
    "IP-to-ASN/country data: ip-location-db (CC BY 4.0), from RouteViews, NRO and DB-IP (https://db-ip.com)";

/// The file names a data directory holds.
pub const FILES: [&str; 4] =
    ["asn-ipv4.csv.gz", "asn-ipv6.csv.gz", "asn-country-ipv4.csv.gz", "asn-country-ipv6.csv.gz"];

#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    #[error("reading {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} line {line}: {reason}")]
    Format { file: String, line: u64, reason: String },
}

/// What is known about one address.
#[derive(Debug, Clone, PartialEq)]
pub struct IpInfo {
    pub asn: Option<u32>,
    pub as_name: Option<Text>,
    pub cc: Option<[u8; 2]>,
}

impl IpInfo {
    pub fn cc_str(&self) -> Option<&str> {
        self.cc.as_ref().and_then(|c| std::str::from_utf8(c).ok())
    }
}

/// The lookup tables.
#[derive(Debug, Default)]
pub struct IpDb {
    asn4: RangeTable<u32, u32>,
    asn6: RangeTable<u128, u32>,
    cc4: RangeTable<u32, [u8; 2]>,
    cc6: RangeTable<u128, [u8; 2]>,
    orgs: HashMap<u32, Text>,
}

fn addr4(s: &str) -> Option<u32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

fn addr6(s: &str) -> Option<u128> {
    s.parse::<std::net::Ipv6Addr>().ok().map(u128::from)
}

fn gunzip_csv(file: &str, data: impl Read) -> csv::Reader<flate2::read::MultiGzDecoder<impl Read>> {
    let _ = file;
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(flate2::read::MultiGzDecoder::new(data))
}

impl IpDb {
    /// The tables shipped in the binary, loaded once per process.
    pub fn builtin() -> Arc<IpDb> {
        static DB: OnceLock<Arc<IpDb>> = OnceLock::new();
        DB.get_or_init(|| {
            // The shipped files are checked by the tests; a failure here is a broken build.
            let db = IpDb::from_readers(
                &include_bytes!("../data/asn-ipv4.csv.gz")[..],
                &include_bytes!("../data/asn-ipv6.csv.gz")[..],
                &include_bytes!("../data/asn-country-ipv4.csv.gz")[..],
                &include_bytes!("../data/asn-country-ipv6.csv.gz")[..],
            )
            .expect("shipped ip-location-db files parse");
            Arc::new(db)
        })
        .clone()
    }

    /// Loads the four files of [`FILES`] from a directory.
    pub fn load_dir(dir: &Path) -> Result<IpDb, EnrichError> {
        let open = |name: &str| {
            std::fs::File::open(dir.join(name))
                .map(std::io::BufReader::new)
                .map_err(|source| EnrichError::Io { file: dir.join(name).display().to_string(), source })
        };
        IpDb::from_readers(open(FILES[0])?, open(FILES[1])?, open(FILES[2])?, open(FILES[3])?)
    }

    /// Builds from gzip-compressed CSV readers (ASN v4, ASN v6, country v4, country v6).
    pub fn from_readers(
        asn4: impl Read,
        asn6: impl Read,
        cc4: impl Read,
        cc6: impl Read,
    ) -> Result<IpDb, EnrichError> {
        let mut orgs = HashMap::new();
        let asn4 = load_asn(FILES[0], asn4, addr4, &mut orgs)?;
        let asn6 = load_asn(FILES[1], asn6, addr6, &mut orgs)?;
        let cc4 = load_cc(FILES[2], cc4, addr4)?;
        let cc6 = load_cc(FILES[3], cc6, addr6)?;
        Ok(IpDb { asn4, asn6, cc4, cc6, orgs })
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<IpInfo> {
        let (asn, cc) = match ip {
            IpAddr::V4(v4) => {
                let a = u32::from(v4);
                (self.asn4.get(a).map(|x| x.2), self.cc4.get(a).map(|x| x.2))
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return self.lookup(IpAddr::V4(v4));
                }
                let a = u128::from(v6);
                (self.asn6.get(a).map(|x| x.2), self.cc6.get(a).map(|x| x.2))
            }
        };
        if asn.is_none() && cc.is_none() {
            return None;
        }
        Some(IpInfo { asn, as_name: asn.and_then(|a| self.orgs.get(&a).cloned()), cc })
    }

    /// The organisation name of an AS.
    pub fn as_name(&self, asn: u32) -> Option<&str> {
        self.orgs.get(&asn).map(|s| s.as_str())
    }

    /// Fills what the feed did not say: ASN, AS name and country of source and destination.
    /// Values the feed gave are kept (the publisher saw the address at the time; our table
    /// may be newer or older).
    pub fn enrich(&self, e: &mut Event) {
        self.enrich_endpoint(&mut e.source);
        self.enrich_endpoint(&mut e.destination);
    }

    fn enrich_endpoint(&self, ep: &mut Endpoint) {
        let Some(ip) = ep.ip else { return };
        if ep.asn.is_some() && ep.cc.is_some() && ep.as_name.is_some() {
            return;
        }
        let Some(info) = self.lookup(ip) else { return };
        if ep.asn.is_none() {
            ep.asn = info.asn;
        }
        if ep.as_name.is_none() {
            ep.as_name = ep.asn.and_then(|a| self.orgs.get(&a).cloned());
        }
        if ep.cc.is_none() {
            ep.cc = info.cc_str().map(Text::from);
        }
    }

    /// Segments held (after overlaps were resolved) and bytes used.
    pub fn stats(&self) -> (usize, usize) {
        let n = self.asn4.len() + self.asn6.len() + self.cc4.len() + self.cc6.len();
        let bytes = self.asn4.heap_bytes()
            + self.asn6.heap_bytes()
            + self.cc4.heap_bytes()
            + self.cc6.heap_bytes()
            + self.orgs.values().map(|v| 24 + 4 + v.len()).sum::<usize>();
        (n, bytes)
    }
}

/// Reads `first,last,rest…` rows of a gzip CSV, handing each parsed range to `row`, which
/// returns the reason when the rest of the row is bad.
fn load_ranges<A: ranges::Addr>(
    file: &str,
    r: impl Read,
    parse: fn(&str) -> Option<A>,
    mut row: impl FnMut(A, A, &csv::StringRecord) -> Result<(), &'static str>,
) -> Result<(), EnrichError> {
    let mut rdr = gunzip_csv(file, r);
    let mut rec = csv::StringRecord::new();
    let mut line = 0u64;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(EnrichError::Format { file: file.into(), line, reason: e.to_string() }),
        }
        line += 1;
        let bad = |reason: &str| EnrichError::Format { file: file.into(), line, reason: reason.into() };
        let first = rec.get(0).and_then(parse).ok_or_else(|| bad("bad first address"))?;
        let last = rec.get(1).and_then(parse).ok_or_else(|| bad("bad last address"))?;
        row(first, last, &rec).map_err(bad)?;
    }
}

fn load_asn<A: ranges::Addr>(
    file: &str,
    r: impl Read,
    parse: fn(&str) -> Option<A>,
    orgs: &mut HashMap<u32, Text>,
) -> Result<RangeTable<A, u32>, EnrichError> {
    let mut b = RangeBuilder::default();
    load_ranges(file, r, parse, |first, last, rec| {
        let asn: u32 = rec.get(2).and_then(|s| s.parse().ok()).ok_or("bad ASN")?;
        if let Some(org) = rec.get(3).filter(|o| !o.is_empty()) {
            orgs.entry(asn).or_insert_with(|| Text::from(org));
        }
        b.push(first, last, asn);
        Ok(())
    })?;
    Ok(b.build())
}

fn load_cc<A: ranges::Addr>(
    file: &str,
    r: impl Read,
    parse: fn(&str) -> Option<A>,
) -> Result<RangeTable<A, [u8; 2]>, EnrichError> {
    let mut b = RangeBuilder::default();
    load_ranges(file, r, parse, |first, last, rec| {
        let cc = rec.get(2).map(str::as_bytes).filter(|c| c.len() == 2).ok_or("bad country")?;
        b.push(first, last, [cc[0].to_ascii_uppercase(), cc[1].to_ascii_uppercase()]);
        Ok(())
    })?;
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_answer_known_addresses() {
        let db = IpDb::builtin();
        let cf = db.lookup("1.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(cf.asn, Some(13335));
        assert_eq!(cf.as_name.as_deref(), Some("Cloudflare, Inc."));
        assert_eq!(cf.cc_str(), Some("AU"));
        let he = db.lookup("2001::1".parse().unwrap()).unwrap();
        assert_eq!(he.asn, Some(6939));
        assert!(db.lookup("10.0.0.1".parse().unwrap()).is_none_or(|i| i.asn.is_none()));
        // v4-mapped v6 goes to the v4 table.
        assert_eq!(db.lookup("::ffff:1.0.0.1".parse().unwrap()).unwrap().asn, Some(13335));
    }

    #[test]
    fn bad_file_is_a_clear_error() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"1.0.0.0,1.0.0.255,13335,x\nnot,an,entry\n").unwrap();
        let gz = enc.finish().unwrap();
        let empty = {
            let e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.finish().unwrap()
        };
        let err = IpDb::from_readers(&gz[..], &empty[..], &empty[..], &empty[..]).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
