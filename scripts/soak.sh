#!/usr/bin/env bash
# Soak: runs a Sluice server for MINUTES under steady publishers, steady
# and churning players (Sluice's bench plus ffmpeg and rtmpdump), and a
# trickle of garbage connections, sampling the server's RSS and open file
# descriptors every SAMPLE seconds. Not part of CI: it takes as long as
# you ask. Prints the samples (CSV) and a summary at the end.
#
#   scripts/soak.sh            # 30 minutes
#   MINUTES=5 STREAMS=2 PLAYERS=20 CHURN=4 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-30}
STREAMS=${STREAMS:-4}
PLAYERS=${PLAYERS:-40}
CHURN=${CHURN:-5}
SAMPLE=${SAMPLE:-30}
PORT=${PORT:-19450}
OUT=${OUT:-soak-$(date +%Y%m%d-%H%M).csv}

for tool in ffmpeg rtmpdump; do
    command -v $tool >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=640x360:rate=25 \
    -f lavfi -i sine=sample_rate=44100 -t 10 -c:v libx264 -preset veryfast \
    -g 25 -b:v 1M -c:a aac -f flv "$work/media.flv"
cat >"$work/soak.conf" <<CONF
rtmp {
    server {
        listen 127.0.0.1:$PORT;
        ping 10s;
        ping_timeout 5s;
        application live { live on; }
    }
}
CONF
target/release/sluice serve -c "$work/soak.conf" 2>"$work/serve.log" &
server=$!
sleep 1
secs=$((MINUTES * 60))

# Bench: STREAMS publishers, PLAYERS steady players, CHURN joins per second
# (each staying 5 s). It reports loss at the end.
target/release/sluice bench "rtmp://127.0.0.1:$PORT/live/soak" \
    --streams "$STREAMS" --players "$PLAYERS" --publish "$work/media.flv" \
    --churn "$CHURN" --churn-life 5 --duration "$secs" --warmup 2 \
    --server-pid "$server" >"$work/bench.txt" 2>&1 &
bench=$!

# Third-party churn: an ffmpeg player and an rtmpdump player every 10 s,
# and a connection of random bytes every 2 s.
(
    while true; do
        timeout 4 ffmpeg -hide_banner -loglevel quiet -i "rtmp://127.0.0.1:$PORT/live/soak-0" \
            -t 3 -f null - || true
        timeout 4 rtmpdump -q --live -r "rtmp://127.0.0.1:$PORT/live/soak-1" -B 3 -o /dev/null || true
        sleep 3
    done
) &
(
    while true; do
        { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && head -c 4000 /dev/urandom >&3; exec 3>&-; } 2>/dev/null || true
        sleep 2
    done
) &

echo "t_s,rss_kb,fds,threads" | tee "$OUT"
start=$(date +%s)
while kill -0 "$bench" 2>/dev/null; do
    t=$(($(date +%s) - start))
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
    fds=$(ls /proc/$server/fd | wc -l)
    thr=$(awk '/Threads/ {print $2}' /proc/$server/status)
    echo "$t,$rss,$fds,$thr" | tee -a "$OUT"
    sleep "$SAMPLE"
done
wait "$bench" || true
echo
grep -E "^RESULT|loss|players" "$work/bench.txt" || cat "$work/bench.txt"
echo
awk -F, 'NR > 1 {
        n++; rss[n] = $2; fd[n] = $3
        if (n == 1 || $2 < rmin) rmin = $2; if ($2 > rmax) rmax = $2
        if (n == 1 || $3 < fmin) fmin = $3; if ($3 > fmax) fmax = $3
    }
    END {
        q = int(n / 4); if (q < 1) q = 1
        printf "samples %d; RSS KiB min %d max %d, first quarter end %d, last %d\n", n, rmin, rmax, rss[q], rss[n]
        printf "fds min %d max %d, first quarter end %d, last %d\n", fmin, fmax, fd[q], fd[n]
    }' "$OUT"
echo "server log: $(grep -c closed "$work/serve.log") connections closed, $(grep -c panicked "$work/serve.log") panics"
