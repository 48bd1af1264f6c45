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
[ $# -ge 2 ] || { sed -n 2,10p "$0" >&2; exit 2; }
old=$1 new=$2; shift 2
rounds=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ "${1:-}" = "--" ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--modes ext-mem --ram 1024,4096 --reps 3)
cd "$(dirname "$0")/.."
# The runs' own result files would overwrite bench/results/snapshot-*: keep them aside.
export VIRTSNAP_BENCH_RESULTS=${VIRTSNAP_BENCH_RESULTS:-$(mktemp -d /tmp/ab-builds.XXXXXX)}
echo "### result files in $VIRTSNAP_BENCH_RESULTS"
for dir in "$old" "$new"; do
    [ -x "$dir/src/daemon/virtsnapd" ] || { echo "no virtsnapd in $dir" >&2; exit 2; }
done
keep='ext-mem|internal|disk-only|baseline|filled|disk:'
for ((round = 1; round <= rounds; round++)); do
    for which in old new; do
        dir=$old; [ "$which" = new ] && dir=$new
        echo "### round $round $which ($dir) $(date +%T)"
        VIRTSNAP_BENCH_BUILD=$dir /usr/bin/python3 bench/bench_snapshot.py "${args[@]}" \
            --only virtsnapd --no-dd 2>&1 | grep -E "$keep"
    done
done
echo "### libvirtd $(date +%T)"
/usr/bin/python3 bench/bench_snapshot.py "${args[@]}" --only libvirtd 2>&1 | grep -E "$keep"
echo "### end $(date +%T)"
