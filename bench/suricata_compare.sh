#!/usr/bin/env bash
# DNS indicator matching end to end: the same DNS capture and the same C2 domain list through
# Suricata 7 (a `dns.query; dataset:isset` rule over a string dataset) and through
# `botwatch scan`; prints both rates in records per CPU-second and the ratio.
#   bench/suricata_compare.sh [QUERIES] [INDICATORS]  (defaults 1,000,000 and 1,000,000)
#   KEEP=1 keeps the work directory.
# Needs python3, /usr/bin/time and Suricata >= 7 (Debian bookworm: from bookworm-backports;
# installed with apt-get when missing and root, if that suite is in the apt sources).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
queries=${1:-1000000}
inds=${2:-1000000}

if ! command -v suricata >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing suricata (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports suricata >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q suricata >/dev/null 2>&1 || true
fi
if ! command -v suricata >/dev/null; then
  echo "skipped: suricata not installed (Debian bookworm: add bookworm-backports, then"
  echo "  apt-get install -t bookworm-backports suricata)"
  exit 0
fi
major=$(suricata -V | sed -E 's/.*version ([0-9]+).*/\1/')
if [ "${major:-0}" -lt 7 ]; then
  echo "skipped: $(suricata -V) is older than 7 (datasets with absolute paths need 7)"
  exit 0
fi
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "$(suricata -V)"
echo "generating $queries DNS queries, $inds indicator domains"
python3 bench/gen_dns.py "$work" "$queries" "$inds"

# The dataset's hash table sized to the list: at the default (4,096 buckets; the limit for
# one set is 262,144) every look-up walks a long chain, and 1M domains took 83 CPU-s
# instead of ~7 in our run. The limits are raised to allow it.
hs=1024
while [ "$hs" -lt "$inds" ]; do hs=$((hs * 2)); done
cat > "$work/c2.rules" <<EOF
alert dns any any -> any any (msg:"botwatch bench C2 domain"; dns.query; dataset:isset,bwc2,type string,load $work/dataset.lst,memcap 2gb,hashsize $hs; sid:9000001; rev:1;)
EOF
suri_opts=(-S "$work/c2.rules" -k none --runmode single
  --set datasets.rules.allow-absolute-filenames=true
  --set datasets.limits.single-hashsize=$hs --set datasets.limits.total-hashsizes=$hs
  --set outputs.1.eve-log.enabled=no)
mkdir "$work/log"
# One worker thread, checksums not validated (the generator writes none for UDP), and the
# EVE log off (it would write a JSON line per query; botwatch writes nothing per record).
# The alerts are counted in fast.log. Suricata's CPU time includes loading the dataset.
timed "$work/suricata.out" suricata -r "$work/dns.pcap" -l "$work/log" "${suri_opts[@]}"
su_cpu=$cpu su_wall=$wall su_rss=$rss
if grep -q -E "Error: (detect|datasets)" "$work/log/suricata.log"; then
  echo "suricata did not load the rule:"
  grep -E "Error" "$work/log/suricata.log"
  exit 1
fi
su_hits=$(grep -c . "$work/log/fast.log" || true)
# The same start-up over a one-packet capture (an empty one is refused): dataset loading
# and engine start.
mkdir -p "$work/empty" "$work/log0"
python3 bench/gen_dns.py "$work/empty" 1 1 > /dev/null
timed /dev/null suricata -r "$work/empty/dns.pcap" -l "$work/log0" "${suri_opts[@]}"
su_start_cpu=$cpu

botwatch_scan bambenek_c2_domains indicators.txt dns.pcap
bw_records=$(tail -1 "$work/scan.out" | sed -E 's/.*flow records, ([0-9]+) DNS records.*/\1/')
bw_hits=$(tail -1 "$work/scan.out" | sed -E 's/.* ([0-9]+) indicator hits.*/\1/')

BW_COLD="$bw_cold_cpu" python3 - "$queries" "$su_cpu" "$su_wall" "$su_rss" "$su_hits" "$su_start_cpu" \
  "$bw_records" "$bw_hits" "$bw_cpu" "$bw_wall" "$bw_rss" <<'EOF'
import os, sys
q, su_cpu, su_wall, su_rss, su_hits, su_start, bw_rec, bw_hits, bw_cpu, bw_wall, bw_rss = sys.argv[1:]
q, bw_rec = int(q), int(bw_rec)
su_cpu, bw_cpu, su_start = float(su_cpu), float(bw_cpu), float(su_start)
su_rate = q / max(su_cpu, 1e-3)
bw_rate = bw_rec / max(bw_cpu, 1e-3)
print()
print(f"{'':30} {'records':>9} {'hits':>7} {'CPU-s':>7} {'wall s':>7} {'RSS MB':>7} {'rec/CPU-s':>11}")
print(f"{'suricata dataset:isset':30} {q:>9} {su_hits:>7} {su_cpu:>7.2f} {float(su_wall):>7.2f} "
      f"{int(su_rss) / 1024:>7.0f} {su_rate:>11.0f}")
print(f"{'botwatch scan dns.pcap':30} {bw_rec:>9} {bw_hits:>7} {bw_cpu:>7.2f} {float(bw_wall):>7.2f} "
      f"{int(bw_rss) / 1024:>7.0f} {bw_rate:>11.0f}")
print(f"(of Suricata's {su_cpu:.2f} CPU-s, {su_start:.2f} are start-up with the dataset on a one-packet capture; "
      f"botwatch's include reading its compiled matcher snapshot; the first scan after the indicators change "
      f"compiles them from SQLite: {os.environ['BW_COLD']} CPU-s)")
print(f"ratio botwatch/suricata, records per CPU-second: {bw_rate / su_rate:.2f}x")
if str(su_hits) != str(bw_hits):
    print(f"NOTE: hit counts differ (suricata {su_hits} alerts, botwatch {bw_hits} indicator hits)")
EOF
