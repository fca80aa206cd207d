//! botwatch's own sensors: what an ISP sees of its customers' traffic, matched against the
//! indicators the feeds supply, plus detectors that need no indicator at all.
//!
//! - [`record`]: the decoded units every input becomes — [`record::FlowRecord`] and
//!   [`record::DnsRecord`] — so matching and detection never see wire formats.
//! - [`flow`]: NetFlow v5/v9/IPFIX (UDP collector, pcap replay, per-exporter template caches)
//!   and flow logs (Argus/Zeek-style CSV/TSV).
//! - [`dns`]: dnstap (Frame Streams files and socket), Unbound and BIND query logs, DNS in pcap.
//! - [`matcher`]: the compiled indicator set (IPv4/IPv6 exact and longest prefix, domain
//!   suffixes on label boundaries), swapped atomically when indicators change.
//! - [`detect`]: DGA scoring and NXDOMAIN bursts, beaconing.

mod capture;
pub mod detect;
pub mod dns;
pub mod flow;
pub mod lines;
pub mod matcher;
pub mod record;
