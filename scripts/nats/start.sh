#!/usr/bin/env bash
# Starts nats-server (Debian's, 2.9) with JetStream on 127.0.0.1:14222, its store under the
# state directory. Idempotent: a server already answering is kept. Prints the environment
# the tests read.
set -euo pipefail
state="${1:-/tmp/botwatch-nats}"
port=14222
answers() { (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; }
if ! answers; then
  server="$(command -v nats-server || echo /usr/sbin/nats-server)"
  [ -x "$server" ] || { echo "no nats-server" >&2; exit 1; }
  mkdir -p "$state"
  nohup "$server" --jetstream --store_dir "$state/js" -a 127.0.0.1 -p $port \
    >"$state/nats.log" 2>&1 &
  for _ in $(seq 100); do answers && break; sleep 0.1; done
  answers || { echo "nats-server did not start; see $state/nats.log" >&2; exit 1; }
fi
echo "BOTWATCH_NATS_URL=nats://127.0.0.1:$port"
