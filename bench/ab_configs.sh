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
[ $# -ge 2 ] || { sed -n 2,13p "$0" >&2; exit 2; }
conf_a=$1 conf_b=$2; shift 2
rounds=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--modes ext-mem --ram 1024,4096 --reps 3)
cd "$(dirname "$0")/.."
export VIRTSNAP_BENCH_RESULTS=${VIRTSNAP_BENCH_RESULTS:-$(mktemp -d /tmp/ab-configs.XXXXXX)}
echo "### result files in $VIRTSNAP_BENCH_RESULTS"
keep='ext-mem|internal|disk-only|baseline|filled|disk:'
for ((round = 1; round <= rounds; round++)); do
    for which in a b; do
        conf=$conf_a; [ "$which" = b ] && conf=$conf_b
        echo "### round $round $which ($conf) $(date +%T)"
        VIRTSNAP_BENCH_CONF=$conf /usr/bin/python3 bench/bench_snapshot.py "${args[@]}" --only virtsnapd 2>&1 |
            grep -E "$keep"
        for f in "$VIRTSNAP_BENCH_RESULTS"/snapshot-*.md "$VIRTSNAP_BENCH_RESULTS"/snapshot-*.json; do
            [ -e "$f" ] && mv "$f" "$VIRTSNAP_BENCH_RESULTS/r$round-$which.${f##*.}"
        done
    done
done
echo "### end $(date +%T)"
