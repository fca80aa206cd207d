#!/usr/bin/env python3
"""Synthetic DNS workload for bench/suricata_compare.sh (stdlib only).

Writes into OUTDIR:
  indicators.txt  Bambenek C2 domain list rows (`domain,description,date,manpage`) for
                  `botwatch ingest --feed bambenek_c2_domains`
  dataset.lst     the same domains base64-encoded, one a line: a Suricata `type string` dataset
  dns.pcap        one UDP DNS query (A) per packet from clients in 10.1.0.0/16 to 10.0.0.53;
                  every HIT_EVERY-th query asks for an indicator domain, the rest for names
                  outside the list

usage: gen_dns.py OUTDIR [QUERIES] [INDICATORS]
"""

import base64
import random
import struct
import sys

from pcapgen import ETHERNET, FILE_HEADER, ipv4, record

HIT_EVERY = 50
# 2026-11-24T00:00:00Z: inside every indicator's validity window (listed 2026-11-20).
START = 1795478400
SPAN_SECS = 1800
LISTED = "2026-11-20 08:00"
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
TLDS = ["com", "net", "org", "info", "ru", "top"]
WORDS = ["mail", "www", "cdn", "api", "static", "img", "login", "news", "shop", "video"]


def qname(name):
    out = bytearray()
    for label in name.split("."):
        out.append(len(label))
        out += label.encode()
    out.append(0)
    return bytes(out)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    queries = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    n_ind = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    rng = random.Random(20261124)
    indicators = set()
    while len(indicators) < n_ind:
        label = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(8, 16)))
        indicators.add(f"{label}.{rng.choice(TLDS)}")
    indicators = sorted(indicators)
    rng.shuffle(indicators)
    # Ordinary names: word-like hosts under many sites, none of them an indicator.
    others = [f"{rng.choice(WORDS)}.site{j}.{rng.choice(TLDS)}" for j in range(min(queries, 200_000))]

    with open(f"{outdir}/indicators.txt", "w") as f:
        f.write("## synthetic C2 domain list\n")
        for d in indicators:
            f.write(f"{d},Domain used by emotet,{LISTED},http://osint.example/manual/emotet.txt\n")
    with open(f"{outdir}/dataset.lst", "w") as f:
        for d in indicators:
            f.write(base64.b64encode(d.encode()).decode())
            f.write("\n")

    resolver = bytes([10, 0, 0, 53])
    hits = 0
    with open(f"{outdir}/dns.pcap", "wb") as f:
        f.write(FILE_HEADER)
        for i in range(queries):
            if i % HIT_EVERY == 0:
                name = indicators[rng.randrange(n_ind)]
                hits += 1
            else:
                name = others[rng.randrange(len(others))]
            dns = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack("!HH", 1, 1)
            # UDP checksum 0 (none) is valid over IPv4.
            udp = struct.pack("!HHHH", 1024 + (i >> 16) * 16 + (i % 16), 53, 8 + len(dns), 0)
            src = bytes([10, 1, (i >> 8) & 255, i & 255])
            ip = ipv4(17, i, 0, src, resolver, len(udp) + len(dns))
            ts = START + i * SPAN_SECS // queries
            f.write(record(ts, (i * 997) % 1_000_000, ETHERNET + ip + udp + dns))
    print(f"queries={queries} indicator_queries={hits} indicators={n_ind}")


if __name__ == "__main__":
    main()
