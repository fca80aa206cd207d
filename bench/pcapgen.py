"""Shared by the workload generators: classic pcap (Ethernet) and IPv4 headers, stdlib only."""

import struct

# Little-endian pcap, version 2.4, snaplen 65535, link type 1 (Ethernet).
FILE_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
# Ethernet II to/from locally administered MACs, type IPv4.
ETHERNET = bytes.fromhex("020000000002" "020000000001" "0800")


def ip_checksum(hdr):
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, ident, flags, src, dst, payload_len):
    """A 20-byte IPv4 header (TTL 64) with its checksum; `src`/`dst` are 4 bytes each."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident & 0xFFFF, flags, 64, proto, 0, src, dst)
    return ip[:10] + struct.pack("!H", ip_checksum(ip)) + ip[12:]


def record(ts, usec, frame):
    """A pcap record: header plus the frame, uncut."""
    return struct.pack("<IIII", ts, usec, len(frame), len(frame)) + frame
