#!/usr/bin/env bash
# Peak memory of `botwatch ingest` on inputs that used to be held in memory whole:
#   1. a gzip bomb: 6 MB expanding to 1.9 GiB of one repeated sinkhole row (concatenated
#      gzip members, which gzip and IntelMQ read as one stream);
#   2. a 1 GB plain Shadowserver event4_sinkhole report (synthetic, real layout);
#   3. the same rows gzipped (a 1 GiB expansion of valid rows).
# Peak RSS (KiB) by GNU time; the store on the same disk. Usage: bench/memory.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rows=${1:-3200000}
cargo build --release -q -p botwatch
bw=target/release/botwatch
day=2026-11-24

python3 - "$work/$day-event4_sinkhole-bomb.csv.gz" <<'EOF'
import gzip, sys, zlib
header = b'"timestamp","protocol","src_ip","src_port","src_asn","src_geo","src_region","src_city","infection"\n'
row = b'"2026-11-24 10:00:00","tcp","79.192.0.7","40001","3320","DE","x","y","emotet"\n'
block = row * ((16 << 20) // len(row))
def member(data):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()
with open(sys.argv[1], "wb") as f:
    f.write(member(header))
    one = member(block)
    for _ in range(122):
        f.write(one)
EOF
$bw synth --rows "$rows" --infected 200000 --day "$day" > "$work/$day-event4_sinkhole-big.csv"
gzip -1 -k -c "$work/$day-event4_sinkhole-big.csv" > "$work/$day-event4_sinkhole-bigz.csv.gz"

run() {
  local name=$1 file=$2
  rm -f "$work/m.db"*
  set +e
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$bw" ingest --quiet --db "$work/m.db" "$file" > "$work/out" 2> "$work/err"
  local code=$?
  set -e
  # GNU time says "Command exited with non-zero status N" on a line of its own first.
  read -r wall user sys rss < <(tail -n 1 "$work/time")
  printf "%-34s %8s MB in  %8s MB out  exit %s  %6.1f s  peak RSS %5d MiB  %s\n" "$name" \
    "$(( $(stat -c %s "$file") / 1000000 ))" "$3" "$code" "$wall" "$(( rss / 1024 ))" \
    "$(tail -c 160 "$work/err" | tr '\n' ' ' | cut -c1-120)"
}
exp_big=$(( $(stat -c %s "$work/$day-event4_sinkhole-big.csv") / 1000000 ))
run "gzip bomb (1.9 GiB expanded)" "$work/$day-event4_sinkhole-bomb.csv.gz" 2040
run "plain report" "$work/$day-event4_sinkhole-big.csv" "$exp_big"
run "gzipped report" "$work/$day-event4_sinkhole-bigz.csv.gz" "$exp_big"
