#!/usr/bin/env bash
# Runs Debian's nginx + libnginx-mod-rtmp and Sluice on the same nginx.conf
# against one recording hook server, drives the same ffmpeg session through
# each (publish with connection and stream args, a player joining), and
# diffs the notification calls. Volatile values (clientid, epoch, bytes,
# addr) are masked; field names and order are compared exactly.
# Installs nginx and libnginx-mod-rtmp when missing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || ! command -v ffmpeg >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx libnginx-mod-rtmp ffmpeg >/dev/null
fi
cargo build --release -q
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
hook=18081

cat > "$work/hook.py" <<'PY'
import sys, http.server
log = open(sys.argv[2], "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        log.write(self.path + "\n")
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY

conf() { # $1 port, $2 log tag
cat <<EOF2
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 256; }
rtmp {
    server {
        listen 127.0.0.1:$1;
        notify_method get;
        on_connect http://127.0.0.1:$hook/$2/on_connect;
        on_disconnect http://127.0.0.1:$hook/$2/on_disconnect;
        application myapp {
            live on;
            publish_notify on;
            on_publish http://127.0.0.1:$hook/$2/on_publish;
            on_play http://127.0.0.1:$hook/$2/on_play;
            on_publish_done http://127.0.0.1:$hook/$2/on_publish_done;
            on_play_done http://127.0.0.1:$hook/$2/on_play_done;
            on_done http://127.0.0.1:$hook/$2/on_done;
        }
    }
}
EOF2
}

python3 "$work/hook.py" $hook "$work/calls.log" & sleep 0.5

session() { # $1 port
    ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine \
        -t 4 -c:v libx264 -preset veryfast -g 25 -pix_fmt yuv420p -c:a aac -f flv \
        "rtmp://127.0.0.1:$1/myapp?arg1=v1&arg2=v2/mystream?k=secret" & local p=$!
    sleep 1.5
    ffmpeg -hide_banner -loglevel error -i "rtmp://127.0.0.1:$1/myapp/mystream" -t 1 -c copy -f flv -y /dev/null || true
    wait $p || true
    sleep 1
}

conf 19451 nginx > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" & ngx=$!
sleep 1; session 19451; kill $ngx; wait $ngx 2>/dev/null || true

conf 19452 sluice > "$work/sluice.conf"
target/release/sluice serve -c "$work/sluice.conf" 2>"$work/sluice.log" & sl=$!
sleep 1; session 19452; kill $sl; wait $sl 2>/dev/null || true

python3 - "$work/calls.log" <<'PY'
import re, sys
from urllib.parse import urlsplit
VOLATILE = {"clientid", "epoch", "bytes_in", "bytes_out", "addr"}
def parse(line):
    u = urlsplit(line.strip())
    _, who, call = u.path.split("/")
    fields = [(p.split("=", 1) + [""])[:2] for p in u.query.split("&") if p]
    return who, call, fields
def norm(fields, documented):
    out = []
    for k, v in fields:
        v = re.sub(r"127\.0\.0\.1:194\d\d", "127.0.0.1:PORT", v)
        if documented:
            # Sluice's documented differences: flashver not cut at 31 characters
            # (nginx cuts the raw value), bytes_in/bytes_out added
            if k in ("bytes_in", "bytes_out"):
                continue
        out.append(k if k in VOLATILE else f"{k}={v}")
    return "&".join(out)
raw = [parse(l) for l in open(sys.argv[1])]
def flashver_cut(fields):
    from urllib.parse import unquote, quote
    return [(k, quote(unquote(v)[:31], safe="/(),.:=") if k == "flashver" else v) for k, v in fields]
print(f"nginx-rtmp sent {sum(w == 'nginx' for w, *_ in raw)} calls, "
      f"Sluice sent {sum(w == 'sluice' for w, *_ in raw)}")
for documented in (False, True):
    print("\n-- exact comparison --" if not documented else
          "\n-- after Sluice's documented differences (full flashver, bytes_in/bytes_out) --")
    same = diff = 0
    calls = {w: [] for w in ("nginx", "sluice")}
    for who, call, fields in raw:
        if documented and who == "sluice":
            fields = flashver_cut(fields)
        calls[who].append((call, norm(fields, documented)))
    for call in sorted({c for c, _ in calls["nginx"] + calls["sluice"]}):
        a = sorted(n for c, n in calls["nginx"] if c == call)
        b = sorted(n for c, n in calls["sluice"] if c == call)
        if a == b:
            same += 1
            print(f"= {call}: identical ({len(a)} calls)")
            continue
        diff += 1
        print(f"~ {call}: nginx {len(a)} call(s), sluice {len(b)}")
        for x in a:
            if x not in b: print(f"    nginx : {x}")
        for x in b:
            if x not in a: print(f"    sluice: {x}")
    print(f"{same} call types identical, {diff} differ (masked: port, {', '.join(sorted(VOLATILE))})")
PY
