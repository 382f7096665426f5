#!/usr/bin/env bash
# Server CPU and memory for N players of one stream, measured from /proc.
# Usage: bench/fanout.sh [PLAYERS] [SECONDS] [RUNS]
# Needs ffmpeg. Builds the release binary. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
players=${1:-200}; secs=${2:-20}; runs=${3:-3}
port=19377
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build --release -q
bin=target/release/sluice
# ~4 Mbps 720p30 H.264 (CBR with filler) + AAC, 1 s GOP
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \
  -t $((secs + 10)) -c:v libx264 -preset ultrafast -b:v 4M -minrate 4M -maxrate 4M -bufsize 2M \
  -x264-params nal-hrd=cbr -g 30 -pix_fmt yuv420p -c:a aac -f flv "$work/src.flv"
printf 'rtmp { server { listen 127.0.0.1:%s; application live { live on; } } }\n' $port > "$work/b.conf"
tck=$(getconf CLK_TCK)
echo "players=$players seconds=$secs cores=$(nproc) $(uname -r)"
for run in $(seq 1 "$runs"); do
  $bin serve -c "$work/b.conf" 2>"$work/srv.log" & sp=$!
  sleep 0.5
  ffmpeg -hide_banner -loglevel error -re -i "$work/src.flv" -c copy -f flv rtmp://127.0.0.1:$port/live/b 2>/dev/null & fp=$!
  sleep 2
  read -r u0 s0 < <(awk '{print $14, $15}' /proc/$sp/stat)
  out=$($bin bench rtmp://127.0.0.1:$port/live/b --players "$players" --duration "$secs")
  read -r u1 s1 < <(awk '{print $14, $15}' /proc/$sp/stat)
  rss=$(awk '/VmRSS/{print $2}' /proc/$sp/status)
  mbps=$(sed -E 's/.*delivered ([0-9.]+) Mbps.*/\1/' <<<"$out")
  cpu=$(awk -v u=$((u1-u0)) -v s=$((s1-s0)) -v t=$tck 'BEGIN{printf "%.2f", (u+s)/t}')
  gb=$(awk -v m="$mbps" -v d="$secs" 'BEGIN{printf "%.3f", m*d/8/1000}')
  perg=$(awk -v c="$cpu" -v g="$gb" 'BEGIN{printf "%.2f", c/g}')
  echo "run $run: $out | server cpu ${cpu}s (user $((u1-u0)) sys $((s1-s0)) ticks) | ${gb} GB | ${perg} cpu-s/GB | rss ${rss} kB"
  kill $fp $sp 2>/dev/null; wait $sp 2>/dev/null || true
done
