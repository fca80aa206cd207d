//! Kea memfile lease files, `kea-leases4.csv` and `kea-leases6.csv` (Kea Administrator
//! Reference Manual, "Memfile — Basic Storage for Leases"; column lists from Kea's
//! `csv_lease_file4.cc`/`csv_lease_file6.cc`).
//!
//! Columns are found by name from the header, so files from Kea versions with fewer or more
//! columns (`pool_id` since 2.3.8, `hwtype`/`hwaddr_source` in v6) parse alike. A lease's
//! interval is `expire − valid_lifetime .. expire`. Like dhcpd.leases the file is appended to
//! on every change until lease-file cleanup rewrites it, so a later row for an address
//! supersedes an earlier one; a row with `valid_lifetime` 0 (a deleted lease) ends the
//! earlier interval. Kea writes commas inside values as `&#x2c`. Declined leases (state 1)
//! have no holder. The holder is the relay agent's remote-id or circuit-id if Kea stored them
//! in `user_context` (`ISC.relay-agent-info`), else the MAC, else the client-id (v4) or DUID
//! (v6).

use super::{Parsed, host, lines};
use botwatch_model::{LeaseRecord, Timestamp};
use ipnet::{IpNet, Ipv6Net};
use std::collections::HashMap;
use std::net::IpAddr;

fn unescape(s: &[u8]) -> String {
    String::from_utf8_lossy(s).replace("&#x2c", ",")
}

/// Remote-id and circuit-id from `{"ISC": {"relay-agent-info": {...}}}` when Kea stored them.
fn relay_ids(user_context: &str, ids: &mut Vec<(String, String)>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(user_context) else { return };
    let rai = &v["ISC"]["relay-agent-info"];
    for (key, name) in [("remote-id", "remote-id"), ("circuit-id", "circuit-id")] {
        if let Some(s) = rai[key].as_str() {
            ids.push((name.into(), s.to_string()));
        }
    }
}

pub(crate) fn parse(data: &[u8], v6: bool, out: &mut Parsed) {
    let mut it = lines(data);
    let Some((hline, header)) = it.next() else { return };
    let cols: Vec<&[u8]> = header.split(|&c| c == b',').map(|c| c.trim_ascii()).collect();
    let col = |n: &str| cols.iter().position(|c| *c == n.as_bytes());
    let (Some(c_addr), Some(c_valid), Some(c_expire)) =
        (col("address"), col("valid_lifetime"), col("expire"))
    else {
        out.reject(hline, header, "header lacks address, valid_lifetime or expire");
        return;
    };
    let c_hw = col("hwaddr");
    let c_client = col(if v6 { "duid" } else { "client_id" });
    let c_state = col("state");
    let c_ctx = col("user_context");
    let c_host = col("hostname");
    let c_type = col("lease_type");
    let c_plen = col("prefix_len");
    let c_iaid = col("iaid");
    let c_subnet = col("subnet_id");
    let mut last: HashMap<IpNet, usize, xxhash_rust::xxh3::Xxh3DefaultBuilder> = HashMap::default();
    let mut recs: Vec<Option<LeaseRecord>> = Vec::new();
    let mut fields: Vec<&[u8]> = Vec::with_capacity(cols.len());
    for (n, line) in it {
        if line.trim_ascii().is_empty() {
            continue;
        }
        fields.clear();
        fields.extend(line.split(|&c| c == b','));
        let get = |c: Option<usize>| c.and_then(|i| fields.get(i).copied()).filter(|v| !v.is_empty());
        let parsed = (|| {
            let addr = get(Some(c_addr)).ok_or("empty address")?;
            let ip: IpAddr =
                std::str::from_utf8(addr).ok().and_then(|s| s.parse().ok()).ok_or("bad address")?;
            let valid: i64 = get(Some(c_valid))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .ok_or("bad valid_lifetime")?;
            let expire: i64 = get(Some(c_expire))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .ok_or("bad expire")?;
            if valid < 0 {
                return Err("negative valid_lifetime");
            }
            let net = match (ip, get(c_type), get(c_plen)) {
                // lease_type 2 is a delegated prefix (IA_PD).
                (IpAddr::V6(a), Some(b"2"), Some(p)) => {
                    let p: u8 =
                        std::str::from_utf8(p).ok().and_then(|s| s.parse().ok()).ok_or("bad prefix_len")?;
                    IpNet::V6(Ipv6Net::new(a, p).map_err(|_| "bad prefix_len")?.trunc())
                }
                _ => host(ip),
            };
            Ok((net, valid, expire))
        })();
        let (net, valid, expire) = match parsed {
            Ok(x) => x,
            Err(e) => {
                out.reject(n, line, e);
                continue;
            }
        };
        // Fewer fields is tolerated (trailing optional columns); more means a broken row.
        if fields.len() > cols.len() {
            out.reject(n, line, format!("{} fields where the header has {}", fields.len(), cols.len()));
            continue;
        }
        let mut ids = Vec::new();
        if let Some(ctx) = get(c_ctx) {
            relay_ids(&unescape(ctx), &mut ids);
        }
        if let Some(h) = get(c_hw) {
            ids.push(("mac".into(), unescape(h).to_lowercase()));
        }
        if let Some(c) = get(c_client) {
            ids.push((if v6 { "duid" } else { "client-id" }.into(), unescape(c)));
        }
        if let Some(i) = get(c_iaid) {
            ids.push(("iaid".into(), unescape(i)));
        }
        if let Some(h) = get(c_host) {
            ids.push(("hostname".into(), unescape(h)));
        }
        if let Some(s) = get(c_subnet) {
            ids.push(("subnet-id".into(), unescape(s)));
        }
        let start = Timestamp::from_secs(expire.saturating_sub(valid));
        // Deleted (lifetime 0) or declined: nobody holds it from here on.
        let vacant = valid == 0 || get(c_state) == Some(b"1");
        if let Some(&i) = last.get(&net)
            && let Some(prev) = recs[i].as_mut()
        {
            let overlaps = prev.end.is_none_or(|e| start < e);
            let same = !vacant && ids.iter().any(|id| prev.identifiers.contains(id) && id.0 != "subnet-id");
            if overlaps && (same || vacant) {
                // Renewed, released early or deleted: the later row's expiry is current.
                prev.end = Some(if vacant { start.max(prev.start) } else { Timestamp::from_secs(expire) });
                if vacant || same {
                    continue;
                }
            } else if overlaps {
                if prev.start >= start {
                    recs[i] = None;
                } else {
                    prev.end = Some(start);
                }
            }
        }
        if vacant {
            continue;
        }
        let primary = ["remote-id", "circuit-id", "mac", "client-id", "duid"]
            .iter()
            .find_map(|k| ids.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        let Some(subscriber) = primary else {
            out.reject(n, line, "lease without hwaddr, client id or relay ids");
            continue;
        };
        last.insert(net, recs.len());
        recs.push(Some(LeaseRecord {
            ip: net,
            ports: None,
            start,
            end: Some(Timestamp::from_secs(expire)),
            subscriber,
            identifiers: ids,
            source: out.source.clone(),
            line: n,
        }));
    }
    out.records.extend(recs.into_iter().flatten());
}

#[cfg(test)]
mod tests {
    use super::super::{Format, parse_as};

    #[test]
    fn header_order_decides_and_short_rows_reject() {
        // An older v4 header without user_context and pool_id, columns in Kea's order.
        let data =
            b"address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state\n\
192.0.2.10,00:aa:bb:cc:dd:ee,01:00:aa:bb:cc:dd:ee,3600,1795518000,1,0,0,host&#x2cone,0\n\
192.0.2.11,00:aa:bb:cc:dd:ef\n";
        let (r, j) = parse_as(Format::KeaV4, data, "x");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].start.secs(), 1795518000 - 3600);
        assert_eq!(r[0].subscriber, "00:aa:bb:cc:dd:ee");
        assert_eq!(r[0].identifier("hostname"), Some("host,one"));
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].line, 3);
    }
}
