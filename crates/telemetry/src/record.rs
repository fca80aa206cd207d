//! Decoded telemetry records: the common shape of every flow and DNS input.

use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::IpAddr;

/// Whether a flow of protocol `proto` with destination port `port` (for ICMP, type × 256 +
/// code: see [`FlowRecord::dst_port`]) is an ICMP or ICMPv6 echo request.
pub fn is_echo_request(proto: u8, port: u16) -> bool {
    matches!((proto, port >> 8), (1, 8) | (58, 128))
}

/// One flow: a NetFlow/IPFIX record or a flow-log line, direction as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Flow start (or the export time when the exporter sends no start).
    pub start: Timestamp,
    pub end: Timestamp,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    /// For ICMP and ICMPv6, type × 256 + code (an echo request is 2048), as NetFlow v5 and
    /// nfdump carry it; the log readers turn Zeek's and Argus's forms into it.
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, …).
    pub proto: u8,
    pub packets: u64,
    /// Both directions' bytes where the record covers both (a biflow: Zeek, Argus, nfdump's
    /// bidirectional output, flows built from packets); the source's alone otherwise.
    pub bytes: u64,
    /// Of `bytes`, those the responder sent, where the record says (a biflow); `None` for a
    /// one-way record (NetFlow, IPFIX), whose reverse direction is a record of its own.
    #[serde(default)]
    pub resp_bytes: Option<u64>,
    /// The exporter (router) address, when known.
    pub exporter: Option<IpAddr>,
    /// Whether the responder answered: `Some(false)` for an attempt nobody answered or the
    /// responder refused (Zeek `S0`/`REJ`, Argus `S_`/`S_RA`/`INT`), `Some(true)` for a
    /// conversation; `None` where the source does not say (NetFlow).
    #[serde(default)]
    pub answered: Option<bool>,
    /// Whether the originator is inside the monitored network, where the source says so
    /// (Zeek `local_orig`).
    #[serde(default)]
    pub local_orig: Option<bool>,
    /// Whether the responder is inside the monitored network (Zeek `local_resp`).
    #[serde(default)]
    pub local_resp: Option<bool>,
}

/// One DNS query (and its response, when the source logs both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    pub time: Timestamp,
    /// The client that asked (the subscriber side).
    pub client: IpAddr,
    pub client_port: Option<u16>,
    /// Query name, lower case, without the trailing dot.
    pub qname: String,
    /// Query type mnemonic (`A`, `AAAA`, `TXT`, …) or `TYPE<n>`. Borrowed for the known
    /// mnemonics, so a decoder allocates nothing per record for them.
    pub qtype: Cow<'static, str>,
    /// Response code mnemonic (`NOERROR`, `NXDOMAIN`, …) when a response was seen.
    pub rcode: Option<Cow<'static, str>>,
    /// Addresses in the answer, when seen.
    pub answers: Vec<IpAddr>,
    /// Where the query went (the resolver, or a multicast group for mDNS/LLMNR), when the
    /// source says.
    #[serde(default)]
    pub server: Option<IpAddr>,
}
