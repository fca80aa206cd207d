#!/usr/bin/env bash
# A burst through JetStream: REPORTS × ROWS events published at once, then stored by
# WORKERS `botwatch worker`s into one PostgreSQL; prints each worker's peak memory (RSS,
# GNU time's %M) and the totals. The bound holds because a worker takes one delivery at a
# time and parses it as a stream, whatever the backlog.
#
#   bench/burst.sh [REPORTS] [ROWS] [WORKERS]      # default 100 × 100,000 = 10M events, 2 workers
#
# Needs BOTWATCH_PG_URL and BOTWATCH_NATS_URL (scripts/postgres/start.sh, scripts/nats/start.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
: "${BOTWATCH_PG_URL:?}" "${BOTWATCH_NATS_URL:?}"
reports=${1:-100}
rows=${2:-100000}
workers=${3:-2}
bin=target/dist/botwatch
[ -x "$bin" ] || cargo build --locked --profile dist -p botwatch >/dev/null
psql "$BOTWATCH_PG_URL" -qc "DROP SCHEMA IF EXISTS bench_burst CASCADE; CREATE SCHEMA bench_burst" 2>/dev/null
sep='?'; [[ "$BOTWATCH_PG_URL" == *\?* ]] && sep='&'
id="burst$$"
cat > "$work/c.toml" <<CONF
[store]
url = "${BOTWATCH_PG_URL}${sep}options=-csearch_path%3Dbench_burst"
[nats]
url = "$BOTWATCH_NATS_URL"
stream = "B$id"
subject = "$id.reports"
bucket = "$id"
consumer = "w$id"
max_age = "2h"
CONF
start=$(date +%s.%N)
for i in $(seq 1 "$reports"); do
  day=$(date -u -d "2026-01-01 + $i days" +%F)
  f="$work/$day-event4_sinkhole-burst-asn.csv"
  "$bin" synth --rows "$rows" --infected $((rows / 5)) --day "$day" --seed "$i" > "$f"
  "$bin" --config "$work/c.toml" ingest --quiet "$f" > /dev/null
  rm -f "$f"
done
published=$(date +%s.%N)
pids=()
for n in $(seq 1 "$workers"); do
  /usr/bin/time -f "%M %U %S" -o "$work/w$n.time" "$bin" --config "$work/c.toml" worker --idle-exit 5s 2> /dev/null &
  pids+=($!)
done
wait "${pids[@]}"
end=$(date +%s.%N)
stored=$("$bin" --config "$work/c.toml" stats --by feed --format jsonl | python3 -c 'import sys, json; print(sum(json.loads(l)["events"] for l in sys.stdin))')
echo "published $((reports * rows)) events in $(python3 -c "print(round($published - $start, 1))") s (generation included); stored $stored in $(python3 -c "print(round($end - $published - 5, 1))") s by $workers workers"
for n in $(seq 1 "$workers"); do
  read -r rss user sys < "$work/w$n.time"
  echo "worker $n: peak RSS $((rss / 1024)) MiB, CPU $(python3 -c "print(round($user + $sys, 1))") s"
done
psql "$BOTWATCH_PG_URL" -qc "DROP SCHEMA bench_burst CASCADE" 2>/dev/null
