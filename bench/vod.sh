#!/usr/bin/env bash
# VOD fan-out: PLAYERS `sluice bench` players of one ~2 Mbit/s 720p25
# H.264 + AAC file, played from `play DIR` as FLV and as MP4 (moov at the
# end), Sluice against Debian's nginx-rtmp on the same nginx.conf. Reports
# each server's CPU seconds and RSS over the measured window (from /proc)
# and the bytes the players received.
#
#   bench/vod.sh [PLAYERS] [SECONDS] [RUNS]
set -euo pipefail
PLAYERS=${1:-200}
SECS=${2:-20}
RUNS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml"
BIN="$ROOT/target/release/sluice"
DIR=$(mktemp -d)
trap 'pkill -9 -f "$DIR/" || true; rm -rf "$DIR"' EXIT
mkdir -p "$DIR/files"
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=1280x720:rate=25 \
  -f lavfi -i sine=frequency=440:sample_rate=44100 -t 120 -c:v libx264 -preset ultrafast \
  -b:v 2000k -maxrate 2000k -bufsize 4000k -g 50 -c:a aac -b:a 96k "$DIR/files/movie.flv"
ffmpeg -hide_banner -loglevel error -y -i "$DIR/files/movie.flv" -c copy "$DIR/files/movie.mp4"
PORT=19420
cat > "$DIR/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 8192;
pid $DIR/nginx.pid;
error_log $DIR/error.log;
events { worker_connections 4096; }
rtmp { server { listen 127.0.0.1:$PORT; application vod { play $DIR/files; } } }
CONF
for run in $(seq "$RUNS"); do
  for server in sluice nginx; do
    for name in movie mp4:movie.mp4; do
      if [ "$server" = sluice ]; then
        "$BIN" serve -c "$DIR/nginx.conf" > "$DIR/server.log" 2>&1 &
      else
        /usr/sbin/nginx -p "$DIR/" -c "$DIR/nginx.conf" > /dev/null 2>&1 &
      fi
      PID=$!
      sleep 0.7
      R=$("$BIN" bench "rtmp://127.0.0.1:$PORT/vod/$name" --players "$PLAYERS" \
        --duration "$SECS" --warmup 0 --server-pid "$PID" | grep RESULT || true)
      get() { echo "$R" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
      echo "run=$run server=$server file=$name players=$PLAYERS secs=$SECS cpu_s=$(get cpu_s) rss_kb=$(get rss_kb) rss_per_player_kb=$(get rss_per_player_kb) connected=$(get connected) errors=$(get errors) mbps=$(get mbps) cpu_per_gb=$(get cpu_per_gb)"
      kill -9 "$PID" 2>/dev/null || true
      wait "$PID" 2>/dev/null || true
      sleep 0.5
    done
  done
done
