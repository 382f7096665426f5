#!/usr/bin/env bash
# User-space instructions a server spends on a load, counted by callgrind:
# the same figure from run to run whatever else the machine does, where
# CPU seconds move by 15-30 % (BENCHMARKS.md, "Instructions per message").
#
# Usage: bench/callgrind.sh [LOAD] [SECONDS]
#   LOAD     b: 10 streams of 1 Mbit/s, one player each (default)
#            d: 5 steady players of one 1 Mbit/s stream + 20 joins/s
#               living 1 s each
#   SECONDS  measured seconds (default 10)
# Environment:
#   SERVERS  "sluice nginx" (default; nginx-rtmp only when installed)
#   SLUICE   the sluice binary to count (default target/release/sluice);
#            the bench client is always target/release/sluice
#   OUT      directory for logs and callgrind files (default a temp dir)
#
# Counting starts once the server is up (callgrind_control -z), so
# start-up is left out; kernel work is not counted at all. Needs
# valgrind (installed when missing, Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."

load=${1:-b}
secs=${2:-10}
servers=${SERVERS:-sluice nginx}
out=${OUT:-$(mktemp -d)}
client=$PWD/target/release/sluice
sluice=${SLUICE:-$client}
mkdir -p "$out"
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
# Always (cheap when up to date): a stale binary would count old code.
cargo build --release -q --bin sluice
trap 'pkill -P $$ 2>/dev/null || true' EXIT

. bench/media.sh
media "$out/a1m.flv" 1M 640x360 30

case $load in
  b) args=(--players 10 --streams 10 --publish "$out/a1m.flv" --duration "$secs") ;;
  d) args=(--players 5 --publish "$out/a1m.flv" --churn 20 --churn-life 1 --duration "$secs") ;;
  *) echo "unknown load $load" >&2; exit 2 ;;
esac

cat >"$out/sluice.conf" <<EOF
rtmp { server { listen 127.0.0.1:19450; application live { live on; } } }
EOF
cat >"$out/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
daemon off;
master_process off;
pid $out/nginx.pid;
error_log $out/nginx-error.log warn;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:19451; application live { live on; } } }
EOF

printf '| server | load | instructions | published | received | joins | per published message |\n|---|---|---|---|---|---|---|\n'
for s in $servers; do
  case $s in
    sluice) cmd=("$sluice" serve -c "$out/sluice.conf"); port=19450 ;;
    nginx)
      [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || { echo "no nginx-rtmp: skipped" >&2; continue; }
      cmd=(nginx -c "$out/nginx.conf"); port=19451 ;;
    *) echo "unknown server $s" >&2; continue ;;
  esac
  cg=$out/callgrind.$s.$load
  valgrind --tool=callgrind --callgrind-out-file="$cg" "${cmd[@]}" >"$out/$s.log" 2>&1 &
  vpid=$!
  sleep 3
  callgrind_control -z "$vpid" >/dev/null 2>&1
  "$client" bench "rtmp://127.0.0.1:$port/live/s1" "${args[@]}" >"$out/bench.$s.$load" 2>&1
  if [ "$s" = nginx ]; then kill -QUIT "$vpid"; else kill -INT "$vpid"; fi
  wait "$vpid" || true
  ir=$(callgrind_annotate "$cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  pub=$(grep -oE 'published [0-9]+' "$out/bench.$s.$load" | awk '{print $2}')
  got=$(grep -oE 'frames=[0-9]+' "$out/bench.$s.$load" | cut -d= -f2)
  joins=$(grep -oE 'churn_joins=[0-9]+' "$out/bench.$s.$load" | cut -d= -f2)
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$s" "$load" "$ir" "$pub" "$got" "$joins" \
    "$(awk -v a="$ir" -v b="$pub" 'BEGIN { if (b > 0) printf "%.0f", a / b; else print "-" }')"
done
echo "callgrind files and logs: $out" >&2
