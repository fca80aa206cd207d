# Shared by the end-to-end comparison scripts: a work directory and CPU timing.
# shellcheck shell=bash

if [ ! -x /usr/bin/time ]; then
  echo "skipped: /usr/bin/time missing (apt-get install time)"
  exit 0
fi

work=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then echo "work dir: $work"; else trap 'rm -rf "$work"' EXIT; fi

# CPU seconds (user + sys) of a command; its stdout goes to $1. Sets $cpu, $wall and $rss (KB).
timed() {
  local out=$1
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" > "$out"
  read -r wall user sys rss < "$work/time"
  cpu=$(python3 -c "print(round($user + $sys, 2))")
}

# Builds botwatch, ingests INDICATORS as FEED (not timed), then times `botwatch scan` of INPUT
# (matching only, as the other tools do) twice: cold, when the scan compiles the indicators
# from SQLite and writes the matcher snapshot beside the database, and warm, when it reads
# that snapshot (every later scan until a feed changes the indicators). Sets $bw_cpu,
# $bw_wall, $bw_rss (warm), $bw_cold_cpu, and leaves the warm summary in $work/scan.out.
# An optional fourth argument is a botwatch.toml for the scans (else the defaults).
botwatch_scan() {
  local feed=$1 indicators=$2 input=$3
  local conf=()
  if [ -n "${4:-}" ]; then conf=(--config "$4"); fi
  echo "building botwatch (release)"
  cargo build --release -q -p botwatch
  bw="$repo/target/release/botwatch"
  # Run from the work directory so no ./botwatch.toml of the checkout changes the defaults.
  (cd "$work" && "$bw" ingest --quiet --db "$work/bw.db" --feed "$feed" "$indicators" | tail -1)
  rm -f "$work/bw.db.matcher"
  (cd "$work" && timed "$work/scan.out" "$bw" "${conf[@]}" scan --db "$work/bw.db" --no-store --no-detect "$input"
    printf '%s\n' "$cpu" > "$work/scan.cold")
  read -r bw_cold_cpu < "$work/scan.cold"
  (cd "$work" && timed "$work/scan.out" "$bw" "${conf[@]}" scan --db "$work/bw.db" --no-store --no-detect "$input"
    printf '%s %s %s\n' "$cpu" "$wall" "$rss" > "$work/scan.time")
  read -r bw_cpu bw_wall bw_rss < "$work/scan.time"
  echo "botwatch scan: cold (compiles the indicators) ${bw_cold_cpu} CPU-s, warm (snapshot) ${bw_cpu} CPU-s"
  grep -E "^matched against" "$work/scan.out"
  tail -1 "$work/scan.out"
}
