# Sourced by the bench scripts: the generated media every load uses, so
# figures from different scripts compare.
# media FILE BITRATE SIZE SECONDS: H.264 CBR at BITRATE, 30 fps, 1 s GOP,
# + AAC 128k, as FLV; kept when FILE exists already.
media() {
  [ -s "$1" ] && return
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=$3:rate=30" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
    -t "$4" -c:v libx264 -preset ultrafast -tune zerolatency -b:v "$2" -minrate "$2" -maxrate "$2" \
    -bufsize 1M -x264-params nal-hrd=cbr -g 30 -pix_fmt yuv420p -c:a aac -b:a 128k \
    -f flv "$1"
}
