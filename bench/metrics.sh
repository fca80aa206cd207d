#!/usr/bin/env bash
# /metrics on a national-size embedded store: DAYS daily sinkhole reports of ROWS rows
# (default 20 × 500,000 = 10M events), then CASES cases and as many notices written straight
# into the tables (the triggers that keep the counts run as for the case engine's writes).
# Times SCRAPES scrapes of `botwatch serve`'s /metrics one after the other, each after the
# server's one-second reuse of its store figures has run out, so every scrape reads the
# store; prints the median and the slowest, and beside them what the figures cost when
# counted (the queries /metrics ran before they were maintained), on the same store.
#
#   bench/metrics.sh [DAYS] [ROWS] [CASES] [SCRAPES]     # default 20 500000 1000000 30
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
days=${1:-20}
rows=${2:-500000}
cases=${3:-1000000}
scrapes=${4:-30}
bin=$(realpath "${BIN:-target/dist/botwatch}")
[ -x "$bin" ] || cargo build --locked --profile dist -p botwatch >/dev/null
command -v sqlite3 >/dev/null || { echo "skipped: sqlite3 (the CLI) missing"; exit 0; }
cd "$work"
db="$work/m.db"
for d in $(seq 1 "$days"); do
  day=$(date -u -d "2026-10-01 + $((d - 1)) days" +%F)
  f="$work/$day-event4_sinkhole-bench-asn.csv"
  "$bin" synth --rows "$rows" --infected $((rows * 2 / 5)) --day "$day" --seed 7 > "$f"
  "$bin" ingest --quiet --db "$db" "$f" > /dev/null
  rm -f "$f"
done
sqlite3 "$db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $cases)
INSERT INTO cases (key, state, level, org, ip, threat, type, opened_at, first_seen, last_seen, next_check)
SELECT 'ip:' || i || '|bench', CASE WHEN i % 10 = 0 THEN 'closed' ELSE 'notified' END, 1, 'AS64496',
       randomblob(16), 'bench', 'infected-system', 0, 0, 0, CASE WHEN i % 10 = 0 THEN NULL ELSE i END FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $cases)
INSERT INTO outbox (key, message_id, kind, channel, recipient, payload, created_at, due_at, status)
SELECT 'k' || i, 'm' || i || '@bench', 'first', 'email', 'abuse@example.net', '{}', 0, 0,
       CASE WHEN i % 4 = 0 THEN 'pending' ELSE 'sent' END FROM n;
SQL
printf '[server]\nmetrics_access = "public"\n' > bw.toml
port=$((20000 + RANDOM % 20000))
"$bin" --config bw.toml serve --db "$db" --listen "127.0.0.1:$port" > serve.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/metrics" > /dev/null && break; sleep 0.2; done
: > times
for _ in $(seq 1 "$scrapes"); do
  sleep 1.1
  curl -sf -o scrape.txt -w '%{time_total}\n' "http://127.0.0.1:$port/metrics" >> times
done
grep -E '^botwatch_(open_cases|notices)' scrape.txt
events=$(sqlite3 "$db" "SELECT value FROM counters WHERE name = 'events'")
echo "store: $events events, $(sqlite3 "$db" "SELECT COUNT(*) FROM cases") cases, $(( $(stat -c %s "$db") / 1048576 )) MiB"
sort -n times | awk '{a[NR] = $1 * 1000} END {printf "scrape (maintained): median %.2f ms, slowest %.2f ms over %d scrapes\n", a[int((NR + 1) / 2)], a[NR], NR}'
# What the store part of a scrape cost before: every report row, every open case, every notice.
t0=$(date +%s.%N)
sqlite3 "$db" "SELECT feed, SUM(events), SUM(rejects), SUM(duplicates), COUNT(*) FROM reports GROUP BY feed;
  SELECT COUNT(*) FROM cases WHERE state != 'closed'; SELECT status, COUNT(*) FROM outbox GROUP BY status;" > /dev/null
t1=$(date +%s.%N)
python3 -c "print(f'the same figures counted (sqlite3 CLI, warm): {($t1 - $t0) * 1000:.1f} ms')"
