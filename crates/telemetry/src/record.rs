//! Decoded telemetry records: the common shape of every flow and DNS input.

use botwatch_model::Timestamp;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::IpAddr;

/// One flow: a NetFlow/IPFIX record or a flow-log line, direction as exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Flow start (or the export time when the exporter sends no start).
    pub start: Timestamp,
    pub end: Timestamp,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number (6 TCP, 17 UDP, …).
    pub proto: u8,
    pub packets: u64,
    pub bytes: u64,
    /// The exporter (router) address, when known.
    pub exporter: Option<IpAddr>,
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
}
