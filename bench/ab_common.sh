# ab_common.sh - what ab_builds.sh and ab_configs.sh share (arguments, result directory,
# interleaved rounds), sourced by both so that the two A/B scripts cannot drift apart.

# ab_setup USAGE_LINES TMP_PREFIX "$@": A B [ROUNDS] [-- bench_snapshot args] into
# ab_a, ab_b, rounds and args; prints the calling script's lines USAGE_LINES (sed's
# "2,10p") and exits 2 without both A and B. Leaves the shell in the source root.
ab_setup() {
    local usage=$1 prefix=$2
    shift 2
    [ $# -ge 2 ] || { sed -n "$usage" "$0" >&2; exit 2; }
    ab_a=$1 ab_b=$2; shift 2
    rounds=2
    if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
    [ "${1:-}" = "--" ] && shift
    args=("$@")
    [ ${#args[@]} -gt 0 ] || args=(--modes ext-mem --ram 1024,4096 --reps 3)
    cd "$(dirname "$0")/.."
    # The runs' own result files would overwrite bench/results/snapshot-*: keep them aside.
    export VIRTSNAP_BENCH_RESULTS=${VIRTSNAP_BENCH_RESULTS:-$(mktemp -d "/tmp/$prefix.XXXXXX")}
    echo "### result files in $VIRTSNAP_BENCH_RESULTS"
}

# ab_bench [bench_snapshot args after args]: one run, only its per-snapshot lines kept.
ab_bench() {
    /usr/bin/python3 bench/bench_snapshot.py "${args[@]}" "$@" 2>&1 |
        grep -E 'ext-mem|internal|disk-only|baseline|filled|disk:'
}

# ab_interleave LABEL_A LABEL_B RUN: RUN ROUND LABEL VALUE for A then B in every round,
# each headed by "### round N LABEL (VALUE)", so both sides see the same drift of the disk.
ab_interleave() {
    local round
    for ((round = 1; round <= rounds; round++)); do
        echo "### round $round $1 ($ab_a) $(date +%T)"
        "$3" "$round" "$1" "$ab_a"
        echo "### round $round $2 ($ab_b) $(date +%T)"
        "$3" "$round" "$2" "$ab_b"
    done
}
