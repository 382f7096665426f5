#!/usr/bin/env bash
# Edge fan-out in a cluster: ffmpeg publishes to an origin node, N players
# play the stream from an edge node, which pulls it once from the origin.
# Measures both servers' CPU (utime+stime from /proc) over the bench window.
# Usage: [RAMP=players/s] bench/edge.sh [PLAYERS] [SECONDS] [RUNS]
# Needs ffmpeg and redis-server. Builds the release binary. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
players=${1:-500}; secs=${2:-15}; runs=${3:-3}; ramp=${RAMP:-250}
po=19381; pe=19382; pr=19383
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release -q
bin=target/release/sluice
. bench/media.sh
# the media of bench/compare.sh load (a), so its figures compare
media "$work/src.flv" 4M 1280x720 $((secs + 10))
node() { # id port
  printf 'rtmp { cluster { registry redis://127.0.0.1:%s/0; advertise rtmp://127.0.0.1:%s; node_id %s; }
  server { listen 127.0.0.1:%s; application live { live on; } } }\n' $pr "$2" "$1" "$2" > "$work/$1.conf"
}
node origin $po; node edge $pe
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
echo "players=$players seconds=$secs cores=$(nproc) $(uname -r)"
for run in $(seq 1 "$runs"); do
  redis-server --port $pr --save '' --appendonly no --bind 127.0.0.1 >/dev/null & rp=$!
  sleep 0.3
  $bin serve -c "$work/origin.conf" 2>"$work/origin.log" & op=$!
  $bin serve -c "$work/edge.conf" 2>"$work/edge.log" & ep=$!
  sleep 0.5
  ffmpeg -hide_banner -loglevel error -re -i "$work/src.flv" -c copy -f flv rtmp://127.0.0.1:$po/live/b 2>/dev/null & fp=$!
  sleep 2
  o0=$(cpu_ticks $op); e0=$(cpu_ticks $ep)
  out=$($bin bench rtmp://127.0.0.1:$pe/live/b --players "$players" --ramp "$ramp" --duration "$secs")
  o1=$(cpu_ticks $op); e1=$(cpu_ticks $ep)
  rss=$(awk '/VmRSS/{print $2}' /proc/$ep/status)
  mbps=$(sed -E 's/.*delivered ([0-9.]+) Mbps.*/\1/' <<<"$out")
  gb=$(awk -v m="$mbps" -v d="$secs" 'BEGIN{printf "%.3f", m*d/8/1000}')
  ecpu=$(awk -v c=$((e1 - e0)) -v t="$tck" 'BEGIN{printf "%.2f", c/t}')
  ocpu=$(awk -v c=$((o1 - o0)) -v t="$tck" 'BEGIN{printf "%.2f", c/t}')
  perg=$(awk -v c="$ecpu" -v g="$gb" 'BEGIN{printf "%.2f", c/g}')
  pulls=$(grep -c "pull: playing upstream" "$work/edge.log" || true)
  echo "run $run: $out | edge cpu ${ecpu}s, ${gb} GB, ${perg} cpu-s/GB, rss ${rss} kB, upstream pulls ${pulls} | origin cpu ${ocpu}s"
  kill $fp $ep $op 2>/dev/null; wait $ep $op 2>/dev/null || true
  kill $rp; wait $rp 2>/dev/null || true
done
