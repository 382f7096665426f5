#!/usr/bin/env bash
# The whole test suite: installs what the tests need when it is missing
# (ffmpeg/ffprobe, rtmpdump, redis-server, openssl, chromium, nginx with libnginx-mod-rtmp,
# node/npm and the npm packages of
# tests/browser, and a current ffmpeg for Enhanced RTMP from the PyPI package
# imageio-ffmpeg), then runs formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v rtmpdump >/dev/null 2>&1 || need+=(rtmpdump)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Self-signed certificates for RTMPS (tests/rtmps.rs).
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# Debian's nginx-rtmp, run side by side with Sluice (tests/access_log.rs).
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(nginx libnginx-mod-rtmp)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Debian's ffmpeg (5.1) cannot send or read HEVC, AV1, VP9 or multitrack
# FLV; imageio-ffmpeg ships a static ffmpeg 9 with libx265, SVT-AV1 and
# libvpx. tests/enhanced_ffmpeg9.rs finds it through $FFMPEG9.
IMAGEIO_FFMPEG=0.8.1
ffmpeg9() { python3 -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())" 2>/dev/null; }
if [ "$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.__version__)' 2>/dev/null)" != "$IMAGEIO_FFMPEG" ]; then
    echo "installing: imageio-ffmpeg $IMAGEIO_FFMPEG (ffmpeg 9)"
    python3 -m pip install --quiet --disable-pip-version-check "imageio-ffmpeg==$IMAGEIO_FFMPEG"
fi
FFMPEG9="$(ffmpeg9)"
export FFMPEG9

if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/dashjs ]; then
    echo "installing: npm packages in tests/browser (hls.js, mpegts.js, dash.js, playwright-core)"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --release
