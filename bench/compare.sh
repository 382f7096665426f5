#!/usr/bin/env bash
# Sluice and nginx-rtmp side by side under the same loads, one table.
#
# Usage: bench/compare.sh [RUNS] [SECONDS]
#   RUNS     repetitions of every load on every server (default 3)
#   SECONDS  measured seconds per load (default 20)
# Environment:
#   LOAD_A   player counts for load (a) (default "100 500 1000")
#   SERVERS  which servers to run (default "sluice nginx"; also "nms":
#            Node-Media-Server 4 from npm, installed into OUT when missing;
#            "sluice-ring": Sluice with publisher-side writes off, every
#            player served by its own task from the ring; "sluice-nagle":
#            Sluice with `tcp_nodelay off` (Nagle on, as nginx-rtmp runs);
#            "nginx-nodelay": nginx-rtmp with TCP_NODELAY set on every
#            accepted socket by an LD_PRELOAD shim (bench/nodelay_shim.c,
#            built with cc), so that it writes each message as it comes; "srs": SRS at
#            its defaults (merged writes, mw_latency 350 ms), "srs-rt":
#            SRS in its realtime setting (min_latency on, mw_latency 0,
#            tcp_nodelay on); both need SRS=/path/to/objs/srs, a binary
#            built from SRS's own sources with ./configure --sanitizer=off
#            (as its release images are; its default turns ASan on);
#            "xiu": XIU=/path/to/xiu)
#   LOADS    which loads to run (default "a b c d"; "h": 500 HTTP-FLV
#            players of load a's stream, Sluice only; "l": 500 HLS players
#            of load a's stream, 2 s segments, Sluice and nginx-rtmp, each
#            serving the files from its own HTTP side)
#   OUT      directory for logs and raw results (default a temp dir)
#   REPORT   only print the table of an existing results.tsv (runs nothing)
#   NETNS    1: the players run in a network namespace of their own
#            ("sluice-bench"), reaching the servers over a veth pair
#            (10.77.0.1 <-> 10.77.0.2) instead of loopback; needs root and
#            iproute2. NETNS_RATE (e.g. 3gbit) shapes the veth with tbf.
#            The kernel needs the netem qdisc for a delay: NETNS_DELAY
#            (e.g. 20ms) is applied both ways when it has it.
#
# Installs ffmpeg, nginx and libnginx-mod-rtmp when missing (Debian/Ubuntu).
# Both servers listen on 127.0.0.1 only. nginx runs one worker
# (worker_processes 1), as its live module requires. Server CPU is
# utime+stime of the server process from /proc over the measured window,
# sampled by `sluice bench --server-pid`; RSS is VmRSS. The bench samples
# its own utime+stime over the same window ("bench CPU-s"): it shares the
# cores with the server.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
secs=${2:-20}
load_a=${LOAD_A:-"100 500 1000 2000 3000"}
servers=${SERVERS:-"sluice nginx"}
only=${LOADS:-"a b c d"}

if [ -z "${REPORT:-}" ]; then
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q
bin=$PWD/target/release/sluice

out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
trap 'pkill -P $$ 2>/dev/null || true; ip netns del sluice-xiu 2>/dev/null; [ -z "${NETNS:-}" ] || { ip link del slb0 2>/dev/null; ip netns del sluice-bench 2>/dev/null; } || true' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

. bench/media.sh
media "$out/a4m.flv" 4M 1280x720 30
media "$out/a1m.flv" 1M 640x360 30

sport=19350
nport=19351
host=127.0.0.1
inns=()
if [ -n "${NETNS:-}" ]; then
  # Players on the far side of a veth pair: their TCP stack is not the
  # server's loopback (see BENCHMARKS.md for what this changes).
  host=10.77.0.1
  ip netns del sluice-bench 2>/dev/null || true
  ip link del slb0 2>/dev/null || true
  ip netns add sluice-bench
  ip link add slb0 type veth peer name slb1
  ip link set slb1 netns sluice-bench
  ip addr add 10.77.0.1/24 dev slb0 && ip link set slb0 up
  ip netns exec sluice-bench ip addr add 10.77.0.2/24 dev slb1
  ip netns exec sluice-bench ip link set slb1 up
  ip netns exec sluice-bench ip link set lo up
  if [ -n "${NETNS_DELAY:-}" ]; then
    tc qdisc add dev slb0 root netem delay "$NETNS_DELAY" &&
      ip netns exec sluice-bench tc qdisc add dev slb1 root netem delay "$NETNS_DELAY" ||
      { echo "this kernel has no netem qdisc: no delay" >&2; }
  elif [ -n "${NETNS_RATE:-}" ]; then
    tc qdisc add dev slb0 root tbf rate "$NETNS_RATE" burst 1mbit latency 200ms
  fi
  inns=(ip netns exec sluice-bench)
fi
hport=19360
if [[ " $servers " == *" nginx-nodelay "* ]]; then
  cc -O2 -shared -fPIC -o "$out/nodelay_shim.so" bench/nodelay_shim.c -ldl
fi
# HLS (load l) in an application of its own, so that the other loads do
# not pay for segmenting; the same fragment and playlist length for both.
hlsapp="application hls { live on; hls on; hls_fragment 2s; hls_playlist_length 10s; hls_path"
nhport=19361
mkdir -p "$out/sluice-hls" "$out/nginx-hls"
printf 'rtmp { server { listen %s:%s; application live { live on; } %s %s/sluice-hls/hls; } } }\nhttp { server { listen %s:%s; location /live { flv_live on; } location /hls { root %s/sluice-hls; } } }\n' \
  $host $sport "$hlsapp" "$out" $host $hport "$out" >"$out/sluice.conf"
sed 's/^rtmp { server { /rtmp { tcp_nodelay off; server { /' "$out/sluice.conf" >"$out/sluice-nagle.conf"
cat >"$out/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
master_process off;
pid $out/nginx.pid;
error_log $out/nginx-error.log warn;
events { worker_connections 65536; }
rtmp { server { listen $host:$nport; application live { live on; } $hlsapp $out/nginx-hls/hls; } } }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    server { listen $host:$nhport; location /hls { root $out/nginx-hls; add_header Cache-Control no-cache; } }
}
EOF

# Node-Media-Server, when asked for: its own CLI on a config of ours (no
# admin page, no recording), RTMP on loopback.
mport=19352
if [[ " $servers " == *" nms "* ]]; then
  if [ ! -e "$out/nms/node_modules/node-media-server/bin/app.js" ]; then
    command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
    mkdir -p "$out/nms" && (cd "$out/nms" && npm install --silent node-media-server@4 >/dev/null)
  fi
  cat >"$out/nms.json" <<NMS
{ "bind": "$host", "notify": {"url": ""}, "store": {"path": "$out/nms/data", "maxHistory": 100},
  "auth": {"play": false, "publish": false, "secret": ""}, "rtmp": {"port": $mport},
  "http": {"port": $((mport + 100))}, "webadmin": {"enable": false},
  "record": {"auto": false, "path": "$out/nms/record"} }
NMS
fi

# SRS, when asked for and given: listens on loopback, logs to a file. Its
# `time_jitter` (default "full") rebases every player's timestamps to 0,
# which would hide the publisher's timestamps the bench measures latency
# by, so it is off; nothing else differs from SRS's defaults but the
# connection limit. "srs-rt" is SRS's own conf/realtime.conf setting.
srsport=19353
srs_conf() { # name, vhost body
  cat >"$out/$1.conf" <<SRS
listen $host:$srsport;
max_connections 12000;
daemon off;
pid $out/$1.pid;
srs_log_tank file;
srs_log_file $out/$1.log;
srs_log_level warn;
vhost __defaultVhost__ { $2 }
SRS
}
if [[ " $servers " == *" srs"* ]]; then
  [ -x "${SRS:-}" ] || { echo "servers srs/srs-rt need SRS=/path/to/objs/srs" >&2; exit 1; }
  srs_conf srs "play { time_jitter off; }"
  srs_conf srs-rt "tcp_nodelay on; min_latency on; play { time_jitter off; mw_latency 0; mw_msgs 0; }"
fi
# xiu, when asked for and given (XIU=/path/to/xiu, e.g. from
# `cargo install xiu`, which needs libopus-dev): RTMP only. It binds every
# address (0.0.0.0, and its API on 8000), so it runs in a network namespace
# of its own that has only loopback ("sluice-xiu"), and its bench with it.
xport=19354
if [[ " $servers " == *" xiu "* ]]; then
  [ -x "${XIU:-}" ] || { echo "server xiu needs XIU=/path/to/xiu" >&2; exit 1; }
  [ -z "${NETNS:-}" ] || { echo "server xiu does not run with NETNS" >&2; exit 1; }
  ip netns del sluice-xiu 2>/dev/null || true
  ip netns add sluice-xiu && ip netns exec sluice-xiu ip link set lo up
fi

start_server() { # server -> sets pid, port
  case $1 in
    sluice) "$bin" serve -c "$out/sluice.conf" 2>"$out/sluice.log" & pid=$!; port=$sport ;;
    sluice-ring) SLUICE_NO_DIRECT_WRITE=1 "$bin" serve -c "$out/sluice.conf" 2>"$out/sluice.log" & pid=$!; port=$sport ;;
    sluice-nagle) "$bin" serve -c "$out/sluice-nagle.conf" 2>"$out/sluice.log" & pid=$!; port=$sport ;;
    nginx) nginx -c "$out/nginx.conf" -p "$out" 2>>"$out/nginx-error.log" & pid=$!; port=$nport ;;
    nginx-nodelay) LD_PRELOAD="$out/nodelay_shim.so" nginx -c "$out/nginx.conf" -p "$out" 2>>"$out/nginx-error.log" & pid=$!; port=$nport ;;
    nms) node "$out/nms/node_modules/node-media-server/bin/app.js" -c "$out/nms.json" >"$out/nms.log" 2>&1 & pid=$!; port=$mport ;;
    srs|srs-rt) rm -f "$out/$1.pid"; "$SRS" -c "$out/$1.conf" >"$out/$1.out" 2>&1 & pid=$!; port=$srsport ;;
    xiu) ip netns exec sluice-xiu "$XIU" -r $xport -l warn >"$out/xiu.log" 2>&1 & pid=$!; port=$xport ;;
  esac
  for _ in $(seq 50); do
    if [ "$1" = xiu ]; then
      ip netns exec sluice-xiu bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && return
    else
      (exec 3<>/dev/tcp/$host/$port) 2>/dev/null && return
    fi
    sleep 0.1
  done
  echo "$1 did not start" >&2; exit 1
}
stop_server() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; sleep 0.5; }

# load name, then bench arguments after the URL
loads=()
for n in $load_a; do
  loads+=("a:$n players, 4 Mbps|--players $n --publish $out/a4m.flv --ramp 250 --duration $secs")
done
loads+=("b:100 streams 1 Mbps, 1 player each|--players 100 --streams 100 --publish $out/a1m.flv --ramp 100 --duration $secs")
loads+=("c:2000 idle players|--players 2000 --ramp 500 --duration 5 --warmup 0")
loads+=("d:churn 50/s (1 s each) + 50 steady, 4 Mbps|--players 50 --publish $out/a4m.flv --churn 50 --churn-life 1 --duration $secs")
# HTTP-FLV players (Sluice only: nginx-rtmp has no HTTP-FLV), beside load a.
loads+=("h:500 HTTP-FLV players, 4 Mbps|--players 500 --publish $out/a4m.flv --ramp 250 --duration $secs --http-flv http://$host:$hport/live")
# HLS players (Sluice and nginx-rtmp: both write the files and serve them
# over HTTP); the warmup lets the first segments be cut. HLSBASE is the
# server's own HTTP side.
loads+=("l:500 HLS players, 4 Mbps, 2 s segments|--players 500 --publish $out/a4m.flv --ramp 250 --duration $secs --warmup 7 --hls HLSBASE")

results=$out/results.tsv
: >"$results"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $(date -u +%F)"
echo "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), sluice: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for run in $(seq "$runs"); do
  for li in "${!loads[@]}"; do
    l=${loads[$li]}; name=${l%%|*}; args=${l#*|}
    [[ " $only " == *" ${name%%:*} "* ]] || continue
    for srv in $servers; do
      [[ ${name%%:*} != h || $srv == sluice* ]] || continue
      [[ ${name%%:*} != l || $srv == sluice* || $srv == nginx* ]] || continue
      app=live; [ "${name%%:*}" != l ] || app=hls
      case $srv in nginx*) hlsbase=http://$host:$nhport/hls ;; *) hlsbase=http://$host:$hport/hls ;; esac
      sargs=${args//HLSBASE/$hlsbase}
      rm -rf "$out/sluice-hls/hls" "$out/nginx-hls/hls"
      start_server "$srv"
      log="$out/$srv-run$run-load$li.txt"
      # shellcheck disable=SC2086
      if [ "$srv" = xiu ]; then
        # shellcheck disable=SC2086
        ip netns exec sluice-xiu "$bin" bench "rtmp://127.0.0.1:$port/$app/s$li" $sargs --server-pid "$pid" >"$log" 2>&1 || true
      else
        # shellcheck disable=SC2086
        "${inns[@]}" "$bin" bench "rtmp://$host:$port/$app/s$li" $sargs --server-pid "$pid" >"$log" 2>&1 || true
      fi
      r=$(grep -h '^RESULT' "$log" || echo "RESULT failed=1")
      printf '%s\t%s\t%s\t%s\n' "$name" "$srv" "$run" "${r#RESULT }" >>"$results"
      echo "run $run  $srv  $name: ${r#RESULT }" >&2
      stop_server
    done
  done
done

else
  results=$REPORT
fi

# One row per load and server: min and median over the runs.
awk -F'\t' '
function val(kv, key,   n, i, a, p) {
  n = split(kv, a, " ");
  for (i = 1; i <= n; i++) { split(a[i], p, "="); if (p[1] == key) return p[2] }
  return "nan"
}
function sort(arr, n,   i, j, t) {
  for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
}
function stat(key, k,   n, i, v, arr) {
  n = 0
  for (i = 1; i <= cnt[k]; i++) { v = val(row[k, i], key); if (v != "nan") arr[++n] = v + 0 }
  if (n == 0) return "n/a"
  sort(arr, n)
  if (n == 1) return sprintf(fmt[key], arr[1])
  return sprintf(fmt[key] " / " fmt[key], arr[1], arr[int((n + 1) / 2)])
}
function worst(key, k,   i, v, m) {
  m = 0
  for (i = 1; i <= cnt[k]; i++) { v = val(row[k, i], key); if (v != "nan" && v + 0 > m) m = v + 0 }
  return m
}
BEGIN {
  fmt["cpu_per_gb"] = "%.2f"; fmt["bench_cpu_s"] = "%.2f"; fmt["rss_per_player_kb"] = "%.1f"; fmt["lat_p99_ms"] = "%.1f"
  fmt["ttff_p50_ms"] = "%.0f"; fmt["ttff_p99_ms"] = "%.0f"; fmt["mbps"] = "%.0f"
  fmt["churn_ttff_p50_ms"] = "%.0f"; fmt["churn_ttff_p99_ms"] = "%.0f"
}
{
  k = $1 SUBSEP $2
  if (!(k in cnt)) { order[++nk] = k }
  row[k, ++cnt[k]] = $4
}
END {
  print ""
  print "min / median over runs (one value: one run). lost = frames missed by players, worst run."
  print ""
  print "| load | server | connected (worst) | delivered Mbps | CPU-s per GB | RSS per player kB | latency p99 ms | first frame p50 ms | first frame p99 ms | lost (worst) | bench CPU-s |"
  print "|---|---|---|---|---|---|---|---|---|---|---|"
  for (i = 1; i <= nk; i++) {
    split(order[i], kk, SUBSEP); k = order[i]
    minc = 1e9; for (j = 1; j <= cnt[k]; j++) { c = val(row[k, j], "connected"); if (c + 0 < minc) minc = c + 0 }
    players = val(row[k, 1], "players")
    t50 = stat("ttff_p50_ms", k); t99 = stat("ttff_p99_ms", k)
    if (val(row[k, 1], "churn_joins") + 0 > 0) { t50 = stat("churn_ttff_p50_ms", k) " (joins)"; t99 = stat("churn_ttff_p99_ms", k) " (joins)" }
    printf "| %s | %s | %d/%s | %s | %s | %s | %s | %s | %s | %d | %s |\n", kk[1], kk[2], minc, players,
      stat("mbps", k), stat("cpu_per_gb", k), stat("rss_per_player_kb", k), stat("lat_p99_ms", k), t50, t99, worst("lost", k),
      stat("bench_cpu_s", k)
    # Sustained: everyone connected, nothing lost, and still real time
    # (latency p99 under a second) in every run.
    if (kk[1] ~ /^a:/ && minc == players + 0 && worst("lost", k) == 0 && worst("lat_p99_ms", k) < 1000 && players + 0 > best[kk[2]]) best[kk[2]] = players + 0
    servers[kk[2]] = 1
  }
  print ""
  for (s in servers) printf "highest load (a) player count sustained (all connected, no frame lost, latency p99 < 1 s) in every run: %s %d\n", s, best[s]
}' "$results"
echo
echo "raw results: $results"
