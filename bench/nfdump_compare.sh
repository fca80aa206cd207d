#!/usr/bin/env bash
# Indicator matching end to end: the same flows and the same C2 address list through nfdump
# (a `dst ip in [ ... ]` filter file) and through `botwatch scan`; prints both rates in
# records per CPU-second and the ratio. See bench/README.md, "End-to-end vs nfdump".
#   bench/nfdump_compare.sh [FLOWS] [INDICATORS]      (defaults 1,000,000 and 1,000,000)
#   KEEP=1 keeps the work directory.
#   CSV=1 also times the old path: `nfdump -o csv` export, then `botwatch scan` of the CSV
#   (off by default: the export alone costs ~9 CPU-s per 1M flows and is no longer needed,
#   botwatch reads the nfcapd file itself).
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

nf_file=$(cd "$work" && ls nf/nfcapd.*)
[ "$(echo "$nf_file" | wc -l)" = 1 ] || { echo "expected one nfcapd file, got: $nf_file"; exit 1; }
if [ "${CSV:-0}" = 1 ]; then
  timed "$work/flows.csv" nfdump -R "$work/nf" -o csv
  export_cpu=$cpu
  echo "nfdump -o csv export: ${export_cpu} CPU-s (wall ${wall} s), $(wc -c < "$work/flows.csv") bytes"
fi

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

# botwatch reads the same nfcapd file nfdump reads (its own reader, no conversion).
# The generated clients are in 10.0.0.0/8: told its own address space, as a deployment is,
# botwatch looks up only the external end of each flow, as nfdump's `dst ip in` filter does.
printf '[sensor]\ninternal = ["10.0.0.0/8"]\n' > "$work/botwatch.toml"
botwatch_scan abusech_feodo_csv indicators.csv "$nf_file" "$work/botwatch.toml"
summary() { tail -1 "$work/scan.out" | sed -E "$1"; }
bw_records=$(summary 's/^([0-9]+) flow records.*/\1/')
bw_hits=$(summary 's/.* ([0-9]+) indicator hits.*/\1/')

csv_line=""
if [ "${CSV:-0}" = 1 ]; then
  (cd "$work" && timed "$work/scan.out" "$bw" scan --db "$work/bw.db" --no-store --no-detect flows.csv
    printf '%s %s %s\n' "$cpu" "$wall" "$rss" > "$work/scan.time")
  read -r csv_cpu csv_wall csv_rss < "$work/scan.time"
  csv_line="$(summary 's/^([0-9]+) flow records.*/\1/') $(summary 's/.* ([0-9]+) indicator hits.*/\1/') $csv_cpu $csv_wall $csv_rss $export_cpu"
fi

BW_COLD="$bw_cold_cpu" python3 - "$flows" "$n" "$nf_cpu" "$nf_wall" "$nf_rss" "$nf_hits" "$nf_parse_cpu" \
  "$bw_records" "$bw_hits" "$bw_cpu" "$bw_wall" "$bw_rss" "$csv_line" <<'EOF'
import os, sys
flows, n, nf_cpu, nf_wall, nf_rss, nf_hits, nf_parse, bw_rec, bw_hits, bw_cpu, bw_wall, bw_rss, csv = sys.argv[1:]
flows, bw_rec = int(flows), int(bw_rec)
nf_cpu, bw_cpu, nf_parse = float(nf_cpu), float(bw_cpu), float(nf_parse)
nf_rate = flows / max(nf_cpu, 1e-3)
bw_rate = bw_rec / max(bw_cpu, 1e-3)
print()
print(f"{'':34} {'records':>9} {'hits':>7} {'CPU-s':>7} {'wall s':>7} {'RSS MB':>7} {'rec/CPU-s':>11}")
print(f"{'nfdump -f filter (' + n + ' IPs)':34} {flows:>9} {nf_hits:>7} {nf_cpu:>7.2f} {float(nf_wall):>7.2f} "
      f"{int(nf_rss) / 1024:>7.0f} {nf_rate:>11.0f}")
print(f"{'botwatch scan nfcapd file':34} {bw_rec:>9} {bw_hits:>7} {bw_cpu:>7.2f} {float(bw_wall):>7.2f} "
      f"{int(bw_rss) / 1024:>7.0f} {bw_rate:>11.0f}")
hits = [bw_hits]
if csv:
    c_rec, c_hits, c_cpu, c_wall, c_rss, exp = csv.split()
    c_rec, c_cpu, exp = int(c_rec), float(c_cpu), float(exp)
    hits.append(c_hits)
    print(f"{'botwatch scan flows.csv':34} {c_rec:>9} {c_hits:>7} {c_cpu:>7.2f} {float(c_wall):>7.2f} "
          f"{int(c_rss) / 1024:>7.0f} {c_rec / max(c_cpu, 1e-3):>11.0f}")
    print(f"{'  + nfdump -o csv export':34} {c_rec:>9} {c_hits:>7} {c_cpu + exp:>7.2f} {'':>7} {'':>7} "
          f"{c_rec / max(c_cpu + exp, 1e-3):>11.0f}")
print(f"(of nfdump's {nf_cpu:.2f} CPU-s, {nf_parse:.2f} parse the filter file; botwatch's include reading its compiled "
      f"matcher snapshot; the first scan after the indicators change compiles them from SQLite: {os.environ['BW_COLD']} CPU-s)")
print(f"ratio botwatch/nfdump, records per CPU-second, both reading the nfcapd file: {bw_rate / nf_rate:.2f}x (target 10x)")
for h in hits:
    if str(nf_hits) != str(h):
        print(f"WARNING: hit counts differ (nfdump {nf_hits}, botwatch {h})")
EOF
