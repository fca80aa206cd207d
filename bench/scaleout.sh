#!/usr/bin/env bash
# Past one machine: throughput of `botwatch worker` ×1, ×2, ×4 storing from NATS JetStream
# into one PostgreSQL, beside a direct `botwatch ingest` into PostgreSQL and into SQLite.
#
#   scripts/postgres/start.sh; scripts/nats/start.sh    # 127.0.0.1 only
#   bench/scaleout.sh [REPORTS] [ROWS]                 # default 8 × 100,000 rows
#
# Needs BOTWATCH_PG_URL and BOTWATCH_NATS_URL (the start scripts print them) and a
# `--profile dist` build (made if missing). Each run gets a fresh PostgreSQL schema and its
# own stream. Prints one Markdown row per configuration: wall seconds from the first worker's
# start to the last event stored (the workers' idle wait taken off), events per second, and
# the CPU seconds the workers and the PostgreSQL server each spent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh
: "${BOTWATCH_PG_URL:?start scripts/postgres/start.sh and export what it prints}"
: "${BOTWATCH_NATS_URL:?start scripts/nats/start.sh and export what it prints}"
reports=${1:-8}
rows=${2:-100000}
bin=target/dist/botwatch
[ -x "$bin" ] || cargo build --locked --profile dist -p botwatch >/dev/null
files=()
for i in $(seq 1 "$reports"); do
  f="$work/2026-11-$((10 + i))-event4_sinkhole-bench-asn.csv"
  "$bin" synth --rows "$rows" --infected $((rows / 5)) --day "2026-11-$((10 + i))" --seed "$i" > "$f"
  files+=("$f")
done
events_total=$((reports * rows))
# CPU seconds the PostgreSQL server has used so far: its live processes, and the sessions
# that ended (reaped by the postmaster, so counted in its children's time).
pg_cpu() {
  local tck; tck=$(getconf CLK_TCK)
  for p in $(pgrep -u postgres postgres); do
    # Fields after the command name: utime stime cutime cstime are 12–15.
    sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}'
  done | awk -v t="$tck" '{s += $1} END {printf "%.1f", s / t}'
}
schema_url() {
  psql "$BOTWATCH_PG_URL" -qc "DROP SCHEMA IF EXISTS $1 CASCADE; CREATE SCHEMA $1" 2>/dev/null
  local sep='?'; [[ "$BOTWATCH_PG_URL" == *\?* ]] && sep='&'
  echo "${BOTWATCH_PG_URL}${sep}options=-csearch_path%3D$1"
}
stored() { "$bin" --config "$1" stats --by feed --format jsonl | python3 -c 'import sys, json; print(sum(json.loads(l)["events"] for l in sys.stdin))'; }

echo "| configuration | wall s | events/s | worker CPU s | PostgreSQL CPU s |"
echo "|---|---|---|---|---|"
# Direct ingest, one process: SQLite, then PostgreSQL.
printf '[store]\npath = "%s"\n' "$work/direct.db" > "$work/lite.toml"
timed /dev/null "$bin" --config "$work/lite.toml" ingest --quiet "${files[@]}"
echo "| ingest → SQLite (one process) | $wall | $(python3 -c "print(round($events_total / $wall))") | $cpu | – |"
url=$(schema_url bench_direct)
printf '[store]\nurl = "%s"\n' "$url" > "$work/pg.toml"
p0=$(pg_cpu)
timed /dev/null "$bin" --config "$work/pg.toml" ingest --quiet "${files[@]}"
p1=$(pg_cpu)
echo "| ingest → PostgreSQL (one process) | $wall | $(python3 -c "print(round($events_total / $wall))") | $cpu | $(python3 -c "print(round($p1 - $p0, 1))") |"
[ "$(stored "$work/pg.toml")" = "$events_total" ] || echo "warning: PostgreSQL holds $(stored "$work/pg.toml") events, expected $events_total" >&2

for w in 1 2 4; do
  url=$(schema_url "bench_w$w")
  id="b$w$$"
  cat > "$work/w$w.toml" <<CONF
[store]
url = "$url"
[nats]
url = "$BOTWATCH_NATS_URL"
stream = "BENCH$id"
subject = "bench$id.reports"
bucket = "bench$id"
consumer = "w$id"
max_age = "1h"
CONF
  "$bin" --config "$work/w$w.toml" ingest --quiet "${files[@]}" > /dev/null
  idle=2
  p0=$(pg_cpu)
  start=$(date +%s.%N)
  pids=()
  for n in $(seq 1 "$w"); do
    /usr/bin/time -f "%U %S" -o "$work/w$w.$n.time" "$bin" --config "$work/w$w.toml" worker --idle-exit ${idle}s 2> /dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  end=$(date +%s.%N)
  p1=$(pg_cpu)
  wall=$(python3 -c "print(round($end - $start - $idle, 2))")
  wcpu=$(cat "$work"/w$w.*.time | awk '{s += $1 + $2} END {print s}')
  got=$(stored "$work/w$w.toml")
  [ "$got" = "$events_total" ] || echo "warning: $w workers stored $got events, expected $events_total" >&2
  echo "| JetStream → $w worker(s) → PostgreSQL | $wall | $(python3 -c "print(round($events_total / $wall))") | $wcpu | $(python3 -c "print(round($p1 - $p0, 1))") |"
done
