#!/usr/bin/env bash
# CPU cost of HLS plus DASH packaging per published stream, Sluice against
# Debian's nginx-rtmp on the same nginx.conf: STREAMS bench publishers of a
# ~2 Mbit/s 720p25 H.264 + AAC FLV, no players, the server's CPU over the
# measured window from /proc. Each server runs twice: live only, then with
# `hls on; dash on;`. The difference is what packaging costs.
#
#   bench/packaging.sh [STREAMS] [SECONDS]
set -euo pipefail
STREAMS=${1:-20}
SECS=${2:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/sluice"
DIR=$(mktemp -d)
trap 'pkill -9 -f "$DIR/" || true; rm -rf "$DIR"' EXIT
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=1280x720:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 10 -c:v libx264 -preset veryfast \
  -b:v 2000k -maxrate 2000k -bufsize 4000k -g 50 -c:a aac -b:a 96k -f flv "$DIR/src.flv"
PORT=19410
conf() { # $1: extra application directives
  cat <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events { worker_connections 1024; }
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; $1 } } }
CONF
}
for server in sluice nginx; do
  for mode in live packaging; do
    rm -rf "$DIR/hls" "$DIR/dash"
    extra=""
    [ "$mode" = packaging ] && extra="hls on; hls_path $DIR/hls; dash on; dash_path $DIR/dash;"
    conf "$extra" > "$DIR/nginx.conf"
    if [ "$server" = sluice ]; then
      "$BIN" serve -c "$DIR/nginx.conf" > "$DIR/server.log" 2>&1 &
    else
      /usr/sbin/nginx -p "$DIR/" -c "$DIR/nginx.conf" > /dev/null 2>&1 &
    fi
    PID=$!
    sleep 0.7
    R=$("$BIN" bench "rtmp://127.0.0.1:$PORT/live/s" --players 0 --streams "$STREAMS" \
      --publish "$DIR/src.flv" --duration "$SECS" --warmup 3 --server-pid "$PID" | grep RESULT)
    CPU=$(echo "$R" | sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p')
    echo "server=$server mode=$mode streams=$STREAMS secs=$SECS cpu_s=$CPU per_stream_cpu_pct=$(echo "$CPU $STREAMS $SECS" | awk '{printf "%.2f", 100*$1/$2/$3}')"
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    sleep 0.5
  done
done
