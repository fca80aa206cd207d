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
