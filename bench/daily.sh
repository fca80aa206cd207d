#!/usr/bin/env bash
# A country's daily reports on the embedded store: DAYS daily Shadowserver sinkhole reports
# of ROWS rows each (the same INFECTED bots every day, as real daily reports mostly are),
# ingested one after the other into one SQLite file by `botwatch ingest`, as a daily cron
# would. Prints one Markdown row per day: wall and CPU seconds (user + sys) of the whole
# process, events per CPU-second, and the store's size on disk per stored event so far
# (main file + WAL after ingest's checkpoint), so the curve from the first day to the last
# shows whether ingest stays flat as the store grows.
#
#   bench/daily.sh [DAYS] [ROWS] [INFECTED]      # default 12 × 500,000 rows, 200,000 bots
#
# Needs a `--profile dist` build (made if missing); BIN=path overrides the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
days=${1:-12}
rows=${2:-500000}
infected=${3:-200000}
bin=$(realpath "${BIN:-target/dist/botwatch}")
[ -x "$bin" ] || cargo build --locked --profile dist -p botwatch >/dev/null
db="$work/daily.db"
# From the work directory: no ./botwatch.toml of the checkout changes the defaults.
cd "$work"
total=0
echo "| day | events | wall s | CPU s (user+sys) | events per CPU-s | store bytes per event |"
echo "|---|---|---|---|---|---|"
for d in $(seq 1 "$days"); do
  day=$(date -u -d "2026-10-01 + $((d - 1)) days" +%F)
  f="$work/$day-event4_sinkhole-bench-asn.csv"
  # Not timed. Same seed every day: the same bots, seen again at other times.
  "$bin" synth --rows "$rows" --infected "$infected" --day "$day" --seed 7 > "$f"
  timed "$work/ingest.out" "$bin" ingest --quiet --db "$db" "$f"
  rm -f "$f"
  total=$((total + rows))
  bytes=$(( $(stat -c %s "$db") + $(stat -c %s "$db-wal" 2>/dev/null || echo 0) ))
  python3 - "$d" "$rows" "$wall" "$user" "$sys" "$bytes" "$total" <<'PY'
import sys
d, rows, wall, user, sys_, size, total = sys.argv[1:]
cpu = float(user) + float(sys_)
print(f"| {d} | {int(rows):,} | {float(wall):.2f} | {cpu:.2f} ({float(user):.2f}+{float(sys_):.2f}) | {int(rows)/cpu:,.0f} | {int(size)/int(total):.0f} |")
PY
done
