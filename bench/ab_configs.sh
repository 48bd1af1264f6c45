#!/usr/bin/env bash
# ab_configs - the same bench_snapshot run against one virtsnapd build under two
# virtsnapd.conf texts, interleaved (as ab_builds.sh does for two builds): a setting is
# judged against the other value on the same machine minutes apart.
#
#   bench/ab_configs.sh 'CONF_A' 'CONF_B' [ROUNDS] [-- bench_snapshot args]
#
# CONF_* are virtsnapd.conf lines ("\n" separates several), e.g.
#   bench/ab_configs.sh 'snapshot_image_format = "raw"' 'snapshot_image_format = "sparse"' 2 \
#       -- --emulator tests/qemu10/cache/qemu-system-x86_64 --modes ext-mem --ram 1024,4096 --reps 3
# Every run is --only virtsnapd and measures the disk with dd first. Prints the per-snapshot
# lines, each run headed by "### round N a|b"; the result files of run N go to
# $VIRTSNAP_BENCH_RESULTS/rN-{a,b}.{md,json}.
set -uo pipefail
. "$(dirname "$0")/ab_common.sh"
ab_setup 2,13p ab-configs "$@"
run_config() {  # ROUND LABEL CONF
    VIRTSNAP_BENCH_CONF=$3 ab_bench --only virtsnapd
    for f in "$VIRTSNAP_BENCH_RESULTS"/snapshot-*.md "$VIRTSNAP_BENCH_RESULTS"/snapshot-*.json; do
        [ -e "$f" ] && mv "$f" "$VIRTSNAP_BENCH_RESULTS/r$1-$2.${f##*.}"
    done
}
ab_interleave a b run_config
echo "### end $(date +%T)"
