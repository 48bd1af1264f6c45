#!/usr/bin/env bash
# ab_builds - the same bench_snapshot run against two virtsnapd builds, interleaved, so a
# change is judged against the code before it on the same machine minutes apart (this
# disk's rate moves by up to 2x within an hour; one run per build says little).
#
#   bench/ab_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS] [-- bench_snapshot args]
#
# Default bench args: --modes ext-mem --ram 1024,4096 --reps 3. Each round runs OLD then NEW
# (--only virtsnapd --no-dd); a final run measures libvirtd once with the dd rate. Prints the
# per-snapshot lines of every run, each run headed by "### round N old|new" or "### libvirtd".
set -uo pipefail
. "$(dirname "$0")/ab_common.sh"
ab_setup 2,10p ab-builds "$@"
for dir in "$ab_a" "$ab_b"; do
    [ -x "$dir/src/daemon/virtsnapd" ] || { echo "no virtsnapd in $dir" >&2; exit 2; }
done
run_build() {  # ROUND LABEL BUILD_DIR
    VIRTSNAP_BENCH_BUILD=$3 ab_bench --only virtsnapd --no-dd
}
ab_interleave old new run_build
echo "### libvirtd $(date +%T)"
ab_bench --only libvirtd
echo "### end $(date +%T)"
