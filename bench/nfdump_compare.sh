#!/usr/bin/env bash
# Indicator matching end to end: the same flows and the same C2 address list through nfdump
# (a `dst ip in [ ... ]` filter file) and through `botwatch scan`; prints both rates in
# records per CPU-second and the ratio. See bench/README.md, "End-to-end vs nfdump".
#   bench/nfdump_compare.sh [FLOWS] [INDICATORS]      (defaults 1,000,000 and 1,000,000)
#   KEEP=1 keeps the work directory.
# Needs python3, /usr/bin/time and nfdump 1.7 (installed with apt-get when missing and root).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
flows=${1:-1000000}
inds=${2:-1000000}

if ! command -v nfdump >/dev/null || ! command -v nfpcapd >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing nfdump (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfdump >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nfdump >/dev/null 2>&1; } ||
      true
  fi
fi
if ! command -v nfdump >/dev/null || ! command -v nfpcapd >/dev/null; then
  echo "skipped: nfdump/nfpcapd not installed and could not be installed (apt-get install nfdump)"
  exit 0
fi
# shellcheck source=bench/lib.sh
source bench/lib.sh

echo "nfdump: $(nfdump -V)"
echo "generating $flows flows, $inds indicators"
python3 bench/gen_flows.py "$work" "$flows" "$inds"
mkdir "$work/nf"
# A node cache above the flow count and one file for the whole capture: nothing is dropped
# or split, so both tools see the same records.
nfpcapd -r "$work/flows.pcap" -w "$work/nf" -B $((flows + flows / 2 + 1024)) -t 86400 > "$work/nfpcapd.log" 2>&1
rm "$work/flows.pcap"

# botwatch reads nfcapd files as nfdump's CSV export; timed separately as the conversion a
# deployment reading nfcapd files pays on top of the scan.
timed "$work/flows.csv" nfdump -R "$work/nf" -o csv
export_cpu=$cpu
echo "nfdump -o csv export: ${export_cpu} CPU-s (wall ${wall} s), $(wc -c < "$work/flows.csv") bytes"

# Largest indicator list nfdump's filter parser accepts, halving from the full list.
n=$inds
while :; do
  { echo "dst ip in ["; head -n $((n + 1)) "$work/indicators.csv" | tail -n +2 | cut -d, -f2 | tr -d '"'; echo "]"; } \
    > "$work/filter.txt"
  if nfdump -Z -f "$work/filter.txt" > /dev/null 2>&1; then break; fi
  if [ "$n" -le 1000 ]; then echo "nfdump rejects even a $n-address filter"; exit 1; fi
  echo "nfdump filter parser rejected $n addresses; halving"
  n=$((n / 2))
done
[ "$n" = "$inds" ] || echo "NOTE: nfdump measured with $n of $inds indicators"
timed "$work/nf_hits.txt" nfdump -R "$work/nf" -q -f "$work/filter.txt"
nf_cpu=$cpu nf_wall=$wall nf_rss=$rss
nf_hits=$(grep -c . "$work/nf_hits.txt" || true)
timed /dev/null nfdump -Z -f "$work/filter.txt"
nf_parse_cpu=$cpu

botwatch_scan abusech_feodo_csv indicators.csv flows.csv
bw_records=$(tail -1 "$work/scan.out" | sed -E 's/^([0-9]+) flow records.*/\1/')
bw_hits=$(tail -1 "$work/scan.out" | sed -E 's/.* ([0-9]+) indicator hits.*/\1/')

python3 - "$flows" "$n" "$nf_cpu" "$nf_wall" "$nf_rss" "$nf_hits" "$nf_parse_cpu" \
  "$bw_records" "$bw_hits" "$bw_cpu" "$bw_wall" "$bw_rss" "$export_cpu" <<'EOF'
import sys
flows, n, nf_cpu, nf_wall, nf_rss, nf_hits, nf_parse, bw_rec, bw_hits, bw_cpu, bw_wall, bw_rss, exp = sys.argv[1:]
flows, bw_rec = int(flows), int(bw_rec)
nf_cpu, bw_cpu, exp, nf_parse = float(nf_cpu), float(bw_cpu), float(exp), float(nf_parse)
nf_rate = flows / max(nf_cpu, 1e-3)
bw_rate = bw_rec / max(bw_cpu, 1e-3)
bw_rate_exp = bw_rec / max(bw_cpu + exp, 1e-3)
print()
print(f"{'':34} {'records':>9} {'hits':>7} {'CPU-s':>7} {'wall s':>7} {'RSS MB':>7} {'rec/CPU-s':>11}")
print(f"{'nfdump -f filter (' + n + ' IPs)':34} {flows:>9} {nf_hits:>7} {nf_cpu:>7.2f} {float(nf_wall):>7.2f} "
      f"{int(nf_rss) / 1024:>7.0f} {nf_rate:>11.0f}")
print(f"{'botwatch scan flows.csv':34} {bw_rec:>9} {bw_hits:>7} {bw_cpu:>7.2f} {float(bw_wall):>7.2f} "
      f"{int(bw_rss) / 1024:>7.0f} {bw_rate:>11.0f}")
print(f"{'botwatch scan + nfdump -o csv':34} {bw_rec:>9} {bw_hits:>7} {bw_cpu + exp:>7.2f} {'':>7} {'':>7} "
      f"{bw_rate_exp:>11.0f}")
print(f"(of nfdump's {nf_cpu:.2f} CPU-s, {nf_parse:.2f} parse the filter file; botwatch's include loading the indicators from SQLite)")
print(f"ratio botwatch/nfdump, records per CPU-second: scan alone {bw_rate / nf_rate:.2f}x, "
      f"with the CSV export {bw_rate_exp / nf_rate:.2f}x (target 10x)")
if str(nf_hits) != str(bw_hits):
    print(f"WARNING: hit counts differ (nfdump {nf_hits}, botwatch {bw_hits})")
EOF
