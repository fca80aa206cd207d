#!/usr/bin/env bash
# Same 100,000-row Shadowserver event4_sinkhole report through IntelMQ's Shadowserver parser
# and through botwatch; prints both rates and the ratio.
#   pip install intelmq   # optional: without it only botwatch's figures are printed
#   bench/intelmq_compare.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-100000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p botwatch
bw=target/release/botwatch
f="$work/2026-11-24-event4_sinkhole-bench-asn.csv"
$bw synth --rows "$rows" > "$f"
echo "report: $f ($(wc -c < "$f") bytes, $rows rows)"
# botwatch: full ingest (parse, enrich, dedup, store); CPU time from /usr/bin/time.
/usr/bin/time -f "botwatch wall_s=%e user_s=%U sys_s=%S max_rss_kb=%M" \
  $bw ingest --quiet --db "$work/b.db" "$f" > "$work/bw.out" 2> "$work/bw.time" || true
cat "$work/bw.out" | tail -1
cat "$work/bw.time" | tail -1
read -r wall user sys <<<"$(tail -1 "$work/bw.time" | sed -E 's/.*wall_s=([0-9.]+) user_s=([0-9.]+) sys_s=([0-9.]+).*/\1 \2 \3/')"
bw_rate=$(python3 -c "print(round($rows/($user+$sys)))")
echo "botwatch full ingest: $bw_rate events per CPU-second"
if python3 bench/intelmq_compare.py "$f" > "$work/imq.out" 2>&1; then
  cat "$work/imq.out"
  imq=$(sed -E 's/.*events_per_cpu_s=([0-9]+).*/\1/' "$work/imq.out")
  python3 -c "print(f'ratio botwatch/intelmq (events per CPU-second): {$bw_rate/$imq:.0f}x')"
else
  echo "IntelMQ not run (pip install intelmq): $(tail -1 "$work/imq.out")"
fi
