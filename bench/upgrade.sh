#!/usr/bin/env bash
# The pause players see during a binary upgrade (SIGUSR2) under load:
# PLAYERS bench players over STREAMS streams, each stream published by a
# bench publisher looping a ~0.5 Mbit/s FLV, SIGUSR2 halfway through the
# measured window. Each run is done twice, without and with the upgrade.
#
#   bench/upgrade.sh [RUNS] [PLAYERS] [STREAMS]
#
# Prints the bench's RESULT line per run (max_gap_ms is the longest time a
# player waited between two frames; lost and repeated are exact, by the
# publisher's sequence) and the old process's handover log line.
set -euo pipefail
RUNS=${1:-3}
PLAYERS=${2:-200}
STREAMS=${3:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
DIR=$(mktemp -d)
trap 'pkill -9 -f "$DIR/sluice serve" || true; rm -rf "$DIR"' EXIT
cp "$ROOT/target/release/sluice" "$DIR/sluice"
PORT=19390
cat > "$DIR/nginx.conf" <<CONF
pid $DIR/sluice.pid;
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; } } }
CONF
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=640x360:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 10 -c:v libx264 -preset veryfast \
  -b:v 1000k -g 25 -c:a aac -f flv "$DIR/src.flv"
for run in $(seq "$RUNS"); do
  for upgrade in 0 1; do
    "$DIR/sluice" serve -c "$DIR/nginx.conf" > "$DIR/log.txt" 2>&1 &
    sleep 0.5
    OLD=$(cat "$DIR/sluice.pid")
    if [ "$upgrade" = 1 ]; then (sleep 12; kill -USR2 "$OLD") & fi
    R=$("$DIR/sluice" bench "rtmp://127.0.0.1:$PORT/live/b" --players "$PLAYERS" \
      --streams "$STREAMS" --publish "$DIR/src.flv" --duration 20 --warmup 2 | grep RESULT)
    echo "run=$run upgrade=$upgrade $R"
    grep -h "connections parked\|took over" "$DIR/log.txt" | sed 's/^/    /' || true
    pkill -9 -f "$DIR/sluice serve" || true
    sleep 0.5
  done
done
