#!/usr/bin/env python3
"""Synthetic workload for bench/nfdump_compare.sh (stdlib only).

Writes into OUTDIR:
  indicators.csv  abuse.ch Feodo CSV, one C2 row per indicator address (for `botwatch ingest`)
  flows.pcap      one TCP packet per flow (Ethernet/IPv4/TCP); every HIT_EVERY-th flow goes
                  to an indicator address, the rest to addresses outside the list

usage: gen_flows.py OUTDIR [FLOWS] [INDICATORS]
"""

import random
import struct
import sys

from pcapgen import ETHERNET, FILE_HEADER, ipv4, record

HIT_EVERY = 50
# 2026-11-24T00:00:00Z: inside every indicator's validity window (first seen 2026-11-20).
START = 1795478400
SPAN_SECS = 1800
FIRST_SEEN = "2026-11-20 08:00:00"
LAST_ONLINE = "2026-11-23"
# First octets kept out of the address pool: private, loopback, CGNAT, link-local,
# documentation/benchmark ranges and multicast would be dropped or special-cased by a feed
# parser, which would make the two tools see different lists.
SKIP_OCTETS = {0, 10, 100, 127, 169, 172, 192, 198, 203}


def addr_pool(rng, n, taken):
    out = []
    while len(out) < n:
        a = rng.getrandbits(32)
        if (a >> 24) in SKIP_OCTETS or (a >> 24) >= 224 or a in taken:
            continue
        taken.add(a)
        out.append(a)
    return out


def dotted(a):
    return f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    flows = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    n_ind = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    rng = random.Random(20261124)
    taken = set()
    indicators = addr_pool(rng, n_ind, taken)
    # Destinations that are not indicators: drawn from the same kind of space, never equal.
    others = addr_pool(rng, min(flows, 200_000), taken)

    with open(f"{outdir}/indicators.csv", "w") as f:
        f.write('"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"\n')
        for a in indicators:
            f.write(f'"{FIRST_SEEN}","{dotted(a)}","443","online","{LAST_ONLINE}","Emotet"\n')

    hits = 0
    with open(f"{outdir}/flows.pcap", "wb") as f:
        f.write(FILE_HEADER)
        for i in range(flows):
            if i % HIT_EVERY == 0:
                dst = indicators[rng.randrange(n_ind)]
                hits += 1
            else:
                dst = others[rng.randrange(len(others))]
            # 65,536 clients inside the ISP (10.1.0.0/16); source ports keep every 5-tuple unique.
            src = (10 << 24) | (1 << 16) | (i & 0xFFFF)
            sport = 1024 + (i >> 16) * 16 + (i % 16)
            dport = 443 if i % 3 else 80
            payload = 40
            ip = ipv4(6, i, 0x4000, src.to_bytes(4, "big"), dst.to_bytes(4, "big"), 20 + payload)
            # PSH+ACK without FIN: the flow ends by the collector's expiry, like most traffic.
            tcp = struct.pack("!HHIIBBHHH", sport, dport, i, 1, 5 << 4, 0x18, 65535, 0, 0)
            ts = START + i * SPAN_SECS // flows
            f.write(record(ts, (i * 997) % 1_000_000, ETHERNET + ip + tcp + bytes(payload)))
    print(f"flows={flows} indicator_flows={hits} indicators={n_ind}")


if __name__ == "__main__":
    main()
