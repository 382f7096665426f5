#!/usr/bin/env bash
# RTMPS against plain RTMP: the same 4 Mbps stream to PLAYERS players, over
# rtmps:// and over rtmp:// on one Sluice (one server {} with both
# listeners), interleaved, RUNS times each.
#
# Usage: bench/tls.sh [PLAYERS] [SECONDS] [RUNS]   (defaults 200 15 3)
#
# One line per run: the server's CPU seconds and CPU per delivered GB
# (utime+stime from /proc, sampled by `sluice bench --server-pid`), its
# RSS, latency p99, loss, and the bench's own CPU (which decrypts too,
# and shares the two cores).
set -euo pipefail
PLAYERS=${1:-200}
SECS=${2:-15}
RUNS=${3:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
cargo build --release --quiet
BIN="$ROOT/target/release/sluice"
DIR=$(mktemp -d)
trap 'pkill -9 -f "$DIR/" 2>/dev/null || true; rm -rf "$DIR"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
. bench/media.sh
media "$DIR/a4m.flv" 4M 1280x720 30
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
PORT=19440
TPORT=19441
cat >"$DIR/sluice.conf" <<CONF
rtmp { server {
  listen 127.0.0.1:$PORT; listen 127.0.0.1:$TPORT ssl;
  ssl_certificate $DIR/cert.pem; ssl_certificate_key $DIR/key.pem;
  application live { live on; }
} }
CONF
# The shell's reaped children's CPU (utime+stime), in seconds.
child_cpu() { awk '{printf "%.2f", ($16 + $17) / 100}' /proc/$$/stat; }
for run in $(seq "$RUNS"); do
  for mode in plain tls; do
    "$BIN" serve -c "$DIR/sluice.conf" >"$DIR/server.log" 2>&1 &
    PID=$!
    sleep 0.7
    if [ "$mode" = tls ]; then url="rtmps://127.0.0.1:$TPORT/live/s"; else url="rtmp://127.0.0.1:$PORT/live/s"; fi
    before=$(child_cpu)
    R=$("$BIN" bench "$url" --insecure --players "$PLAYERS" --publish "$DIR/a4m.flv" \
      --ramp 250 --duration "$SECS" --server-pid "$PID" | grep RESULT || true)
    after=$(child_cpu)
    get() { echo "$R" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
    bench_cpu=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }')
    echo "run=$run mode=$mode players=$PLAYERS secs=$SECS connected=$(get connected) lost=$(get lost) mbps=$(get mbps) cpu_s=$(get cpu_s) cpu_per_gb=$(get cpu_per_gb) rss_kb=$(get rss_kb) rss_per_player_kb=$(get rss_per_player_kb) lat_p99_ms=$(get lat_p99_ms) bench_cpu_s=$bench_cpu"
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    sleep 0.5
  done
done
