#!/usr/bin/env bash
# Rebuilds the seed corpora in fuzz/corpus/ from real client captures:
# ffmpeg publishing, ffmpeg and rtmpdump playing, each through a recording
# proxy in front of `sluice serve`. Also seeds the FLV target with a short
# ffmpeg-made file and the config target with the configs in the repo.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --bin sluice --example fuzz_seeds
cat > "$work/sluice.conf" <<CONF
rtmp { server { listen 127.0.0.1:19351; application live { live on; } } }
CONF
target/release/sluice serve -c "$work/sluice.conf" >"$work/serve.log" 2>&1 &
python3 fuzz/tools/capture.py 19350 19351 "$work/cap" &
sleep 1

ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc=size=96x64:rate=10 \
    -f lavfi -i sine=sample_rate=22050 -t 2 -c:v libx264 -g 10 -c:a aac \
    -f flv "$work/seed.flv"
ffmpeg -hide_banner -loglevel error -re -stream_loop 2 -i "$work/seed.flv" -c copy \
    -f flv rtmp://127.0.0.1:19350/live/seed &
pub=$!
sleep 1.5
ffmpeg -hide_banner -loglevel error -i rtmp://127.0.0.1:19350/live/seed -t 1 -f null - || true
timeout 3 rtmpdump -q -v -r rtmp://127.0.0.1:19350/live/seed -o /dev/null || true
wait $pub || true
sleep 0.5

# conn-0: ffmpeg publish, conn-1: ffmpeg play, conn-2: rtmpdump play.
cd "$work/cap"
mv conn-0.bin ffmpeg-publish.bin
mv conn-1.bin ffmpeg-play.bin
mv conn-2.bin rtmpdump-play.bin
cd "$root"
target/release/examples/fuzz_seeds fuzz/corpus "$work"/cap/*.bin \
    tests/data/ffmpeg_publish.bin

mkdir -p fuzz/corpus/flv fuzz/corpus/config fuzz/corpus/amf3
head -c 24576 "$work/seed.flv" >fuzz/corpus/flv/seed-ffmpeg.flv
cp tests/data/nginx-real.conf fuzz/corpus/config/seed-nginx-real.conf
cp tests/data/sluice-extra.conf fuzz/corpus/config/seed-sluice-extra.conf
# AMF3 by hand (no common client sends it): integer, double, string and its
# reference, a dynamic object with sealed traits, a dense+associative array.
printf '\x04\x7f\x05\x40\x09\x21\xfb\x54\x44\x2d\x18\x06\x0bhello\x06\x00' \
    >fuzz/corpus/amf3/seed-scalars
printf '\x0a\x1b\x07Foo\x03a\x04\x01\x03b\x06\x05hi\x01' >fuzz/corpus/amf3/seed-object
printf '\x09\x05\x03k\x04\x02\x01\x04\x01\x06\x03x' >fuzz/corpus/amf3/seed-array
ls fuzz/corpus | while read -r t; do echo "$t: $(ls fuzz/corpus/"$t" | wc -l) seeds"; done
