#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 300), one after the
# other, on the seed corpora plus whatever earlier runs found, and prints
# one line per target with libFuzzer's final execution count.
# Needs the nightly toolchain and `cargo install cargo-fuzz`. FUZZ_FLAGS
# goes to `cargo fuzz run` (e.g. FUZZ_FLAGS="-s none": the code under test
# forbids unsafe, so AddressSanitizer mostly costs speed).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=${*:-handshake chunk amf0 amf3 command flv config media_body handover_state fmp4_mux vod_flv vod_mp4}
mkdir -p logs
for t in $targets; do
    # shellcheck disable=SC2086
    cargo +nightly fuzz run ${FUZZ_FLAGS:-} "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$')
    cov=$(grep -E '^#[0-9]+.*DONE' "logs/$t.log" | grep -o 'cov: [0-9]*' | tail -1)
    echo "$t: exit $rc, ${execs:-?} executions in ${secs}s, $cov"
done
