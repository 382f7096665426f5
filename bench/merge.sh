#!/usr/bin/env bash
# The latency-budget curve: Sluice's `out_merge` at several windows against
# nginx-rtmp (which writes each message as it comes), PLAYERS players of
# one 4 Mbit/s stream, interleaved, RUNS times each.
#
# Usage: bench/merge.sh [PLAYERS] [SECONDS] [RUNS]   (defaults 500 15 3)
# Environment: WINDOWS (default "0 20 50 100 350", in ms), NGINX=0 to skip
# nginx-rtmp, SRS=/path/to/objs/srs to add SRS (configured with
# --sanitizer=off, as its release images are, and built from its own
# sources) at `mw_latency` set to each window, and in its realtime setting
# (min_latency on, mw_latency 0, mw_msgs 0, tcp_nodelay on). SRS runs with
# `time_jitter off` so that players see the publisher's timestamps, which
# the bench measures latency by; everything else is SRS's default.
#
# One line per run, then min / median per setting: server CPU-s per
# delivered GB (utime+stime from /proc via `sluice bench --server-pid`),
# latency p50/p99 as the bench measures it (publisher send to player
# receive), frames lost.
set -euo pipefail
PLAYERS=${1:-500}
SECS=${2:-15}
RUNS=${3:-3}
WINDOWS=${WINDOWS:-"0 20 50 100 350"}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
if [ "${NGINX:-1}" != 0 ]; then
  command -v nginx >/dev/null || need+=(nginx)
  [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
fi
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet
BIN="$ROOT/target/release/sluice"
DIR=$(mktemp -d)
trap 'pkill -9 -f "$DIR/" 2>/dev/null || true; rm -rf "$DIR"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
. bench/media.sh
media "$DIR/a4m.flv" 4M 1280x720 30
PORT=19480
cat >"$DIR/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
master_process off;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 65536; }
rtmp { server { listen 127.0.0.1:$PORT; application live { live on; } } }
CONF
settings=()
for w in $WINDOWS; do settings+=("sluice:$w"); done
[ "${NGINX:-1}" != 0 ] && settings+=("nginx:0")
if [ -n "${SRS:-}" ]; then
  for w in $WINDOWS; do settings+=("srs:$w"); done
  settings+=("srs-rt:0")
fi
results="$DIR/results"
for run in $(seq "$RUNS"); do
  for s in "${settings[@]}"; do
    server=${s%%:*}
    w=${s##*:}
    if [ "$server" = sluice ]; then
      printf 'rtmp { server { listen 127.0.0.1:%s; application live { live on; out_merge %sms; } } }\n' \
        "$PORT" "$w" >"$DIR/sluice.conf"
      "$BIN" serve -c "$DIR/sluice.conf" >"$DIR/server.log" 2>&1 &
    elif [ "$server" = nginx ]; then
      nginx -p "$DIR/" -c "$DIR/nginx.conf" >/dev/null 2>&1 &
    else
      if [ "$server" = srs ]; then
        vhost="play { time_jitter off; mw_latency $w; }"
      else
        vhost="tcp_nodelay on; min_latency on; play { time_jitter off; mw_latency 0; mw_msgs 0; }"
      fi
      rm -f "$DIR/srs.pid"
      printf 'listen 127.0.0.1:%s;\nmax_connections 12000;\ndaemon off;\npid %s/srs.pid;\nsrs_log_tank file;\nsrs_log_file %s/srs.log;\nsrs_log_level warn;\nvhost __defaultVhost__ { %s }\n' \
        "$PORT" "$DIR" "$DIR" "$vhost" >"$DIR/srs.conf"
      "$SRS" -c "$DIR/srs.conf" >"$DIR/server.log" 2>&1 &
    fi
    PID=$!
    sleep 0.7
    R=$("$BIN" bench "rtmp://127.0.0.1:$PORT/live/s" --players "$PLAYERS" --publish "$DIR/a4m.flv" \
      --ramp 250 --duration "$SECS" --server-pid "$PID" | grep RESULT || true)
    get() { echo "$R" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
    line="setting=$server/$w run=$run connected=$(get connected) lost=$(get lost) mbps=$(get mbps) cpu_per_gb=$(get cpu_per_gb) lat_p50_ms=$(get lat_p50_ms) lat_p99_ms=$(get lat_p99_ms) rss_per_player_kb=$(get rss_per_player_kb)"
    echo "$line" | tee -a "$results"
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    sleep 0.5
  done
done
echo
echo "| setting | CPU-s per GB (min / median) | latency p50 | latency p99 | lost |"
echo "|---|---|---|---|---|"
for s in "${settings[@]}"; do
  server=${s%%:*}
  w=${s##*:}
  grep "setting=$server/$w " "$results" | awk -v name="$server $w ms" '
    function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return a[int((n + 1) / 2)] }
    { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      n++; c[n] = v["cpu_per_gb"]; p5[n] = v["lat_p50_ms"]; p9[n] = v["lat_p99_ms"]; lost += v["lost"] }
    END { mc = med(c, n); printf "| %s | %.2f / %.2f | %s ms | %s ms | %d |\n", name, c[1], mc, med(p5, n), med(p9, n), lost }'
done
