#!/usr/bin/env bash
# Runs every virtsnap test on this machine, from a fresh clone of a Debian 12 box:
#   1. installs the Debian packages (scripts/install-deps.sh),
#   2. builds with warnings as errors and runs every meson test suite
#      (unit, integration with real QEMU and the test guest, e2e with virsh/python-libvirt),
#   3. builds the unit tests and the libFuzzer targets once more, with clang under
#      AddressSanitizer + UndefinedBehaviorSanitizer, runs the unit suite there,
#   4. and runs each fuzz target for a bounded time.
# The last line is "N passed, N failed". Exit status is non-zero when anything failed.
# Environment: FUZZ_SECONDS (default 30 per target), SKIP_FUZZ=1, SKIP_SANITIZERS=1.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

bash scripts/install-deps.sh || { echo "dependency installation failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
declare -a failures=()

count_meson() {  # $1 = build dir, $2 = label
  local log="$1/meson-logs/testlog.json"
  [ -f "$log" ] || { failed=$((failed+1)); failures+=("$2: no test log"); return; }
  local p f names
  read -r p f < <(/usr/bin/python3 - "$log" <<'PY'
import json, sys
p = f = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL", "SKIP"):
        p += 1
    else:
        f += 1
print(p, f)
PY
)
  names=$(/usr/bin/python3 -c '
import json,sys
for l in open(sys.argv[1]):
    l=l.strip()
    if l:
        d=json.loads(l)
        if d.get("result") not in ("OK","EXPECTEDFAIL","SKIP"): print(d.get("name"))' "$log")
  passed=$((passed+p)); failed=$((failed+f))
  # One failing test per line: names such as "virtsnap:unit / qemumonitortest" hold spaces.
  local n
  while IFS= read -r n; do
    [ -n "$n" ] && failures+=("$2: $n")
  done <<<"$names"
}

run_step() {  # label, command...
  local label=$1; shift
  echo "=== $label ($(date +%T))"
  if "$@"; then echo "=== $label done ($(date +%T))"; return 0; fi
  echo "=== $label FAILED ($(date +%T))"
  return 1
}

# 1. Main build: warnings are errors (werror=true is the project default).
if run_step "build" bash -c "meson setup build-ci --wipe >/dev/null 2>&1 || meson setup build-ci >/dev/null && ninja -C build-ci"; then
  echo "=== main tests ($(date +%T))"
  meson test -C build-ci --num-processes 2 --print-errorlogs || true
  count_meson build-ci "main"
else
  failed=$((failed+1)); failures+=("main build")
fi

# 2-3. One clang build serves the sanitizers and the fuzzers, so the libraries are compiled
# twice in all, not three times (the CI ran above its 30 minutes): AddressSanitizer + UBSan with
# libFuzzer's coverage instrumentation. Only the unit tests and the fuzz targets are built.
san_opts=(-Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link)
if [ "${SKIP_SANITIZERS:-0}" != 1 ] || [ "${SKIP_FUZZ:-0}" != 1 ]; then
  if run_step "asan+ubsan+fuzz build" bash -c '
      set -e
      CXX=clang++ meson setup build-san --wipe "$@" >/dev/null 2>&1 || CXX=clang++ meson setup build-san "$@" >/dev/null
      units=$(/usr/bin/python3 scripts/unit-test-targets.py build-san)
      fuzzers=$(ninja -C build-san -t targets all 2>/dev/null | grep -o "^tests/fuzz/fuzz_[a-z_]*" | sort -u)
      ninja -C build-san $units $fuzzers' _ "${san_opts[@]}"; then
    san_built=1
  else
    san_built=0; failed=$((failed+1)); failures+=("sanitizer/fuzz build")
  fi
else
  san_built=0
fi

# 2. Sanitizers on the unit suite.
if [ "${SKIP_SANITIZERS:-0}" != 1 ] && [ "$san_built" = 1 ]; then
  echo "=== asan unit tests ($(date +%T))"
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    meson test -C build-san --suite unit --no-rebuild --num-processes 2 --print-errorlogs || true
  count_meson build-san "asan"
fi

# 3. Fuzzers: each target for a bounded time under ASan.
if [ "${SKIP_FUZZ:-0}" != 1 ] && [ "$san_built" = 1 ]; then
  secs=${FUZZ_SECONDS:-30}
  for bin in build-san/tests/fuzz/fuzz_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus=$(mktemp -d)
    seeds="tests/fuzz/seeds/$name"
    [ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/ 2>/dev/null
    echo "=== fuzz $name for ${secs}s"
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="build-san/$name-" "$corpus" > "build-san/$name.log" 2>&1; then
      passed=$((passed+1)); echo "ok fuzz $name ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "build-san/$name.log" | grep -o '[0-9]*$') runs)"
    else
      failed=$((failed+1)); failures+=("fuzz: $name"); tail -40 "build-san/$name.log"
    fi
    rm -rf "$corpus"
  done
fi

echo "=== finished ($(date +%T))"
if [ ${#failures[@]} -gt 0 ]; then
  echo "Failures:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
