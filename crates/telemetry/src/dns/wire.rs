//! DNS wire messages (RFC 1035) through hickory-proto, reduced to what a [`DnsRecord`] needs.

use crate::record::DnsRecord;
use botwatch_model::Timestamp;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::{RData, RecordType};
use std::net::IpAddr;

/// The parts of one decoded message the decoders pair and keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub id: u16,
    pub is_response: bool,
    pub qname: String,
    pub qtype: String,
    pub rcode: String,
    pub answers: Vec<IpAddr>,
}

impl Summary {
    pub(crate) fn into_record(self, time: Timestamp, client: IpAddr, port: Option<u16>) -> DnsRecord {
        let is_response = self.is_response;
        DnsRecord {
            time,
            client,
            client_port: port,
            qname: self.qname,
            qtype: self.qtype,
            rcode: is_response.then_some(self.rcode),
            answers: self.answers,
        }
    }
}

/// Decodes one message; `Err` carries the reason for a reject. A message without a question
/// is an error too: there is nothing to match.
pub(crate) fn decode(buf: &[u8]) -> Result<Summary, String> {
    let msg = Message::from_vec(buf).map_err(|e| format!("DNS message: {e}"))?;
    let q = msg.queries.first().ok_or_else(|| "DNS message without a question".to_string())?;
    let answers = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok(Summary {
        id: msg.metadata.id,
        is_response: msg.metadata.message_type == MessageType::Response,
        qname: normalise_qname(&q.name().to_ascii()),
        qtype: qtype_mnemonic(q.query_type()),
        rcode: rcode_mnemonic(u16::from(msg.metadata.response_code)),
        answers,
    })
}

/// Lower case, no trailing dot; the root stays `.` so a qname is never empty.
pub(crate) fn normalise_qname(s: &str) -> String {
    let t = s.strip_suffix('.').unwrap_or(s);
    if t.is_empty() { ".".to_string() } else { t.to_ascii_lowercase() }
}

pub(crate) fn qtype_mnemonic(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => t.to_string(),
    }
}

/// Mnemonics as in the IANA registry and as Unbound/BIND print them.
pub(crate) fn rcode_mnemonic(code: u16) -> String {
    let s = match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        n => return format!("RCODE{n}"),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `www.example.com IN A`, id 0x1234, RD.
    fn query() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["WWW", "example", "com"] {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    #[test]
    fn decodes_a_query_and_a_response() {
        let q = decode(&query()).unwrap();
        assert_eq!(
            (q.id, q.is_response, q.qname.as_str(), q.qtype.as_str()),
            (0x1234, false, "www.example.com", "A")
        );
        let mut r = query();
        r[2] = 0x81;
        r[3] = 0x83; // NXDOMAIN
        r[7] = 1; // one answer
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        let s = decode(&r).unwrap();
        assert!(s.is_response);
        assert_eq!(s.rcode, "NXDOMAIN");
        assert_eq!(s.answers, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn truncated_and_empty_are_errors() {
        let q = query();
        for cut in 0..q.len() {
            assert!(decode(&q[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(rcode_mnemonic(99), "RCODE99");
        assert_eq!(qtype_mnemonic(RecordType::Unknown(65280)), "TYPE65280");
        assert_eq!(normalise_qname("."), ".");
    }
}
