#!/usr/bin/env bash
# Runs every virtsnap test on this machine, from a fresh clone of a Debian 12 box:
#   1. installs the Debian packages (scripts/install-deps.sh),
#   2. builds with warnings as errors and runs every meson test suite
#      (unit, integration with real QEMU and the test guest, e2e with virsh/python-libvirt),
#   3. rebuilds under AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit suite,
#   4. builds the libFuzzer targets with clang and runs each for a bounded time.
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

# 2. Sanitizers on the unit suite.
if [ "${SKIP_SANITIZERS:-0}" != 1 ]; then
  if run_step "asan+ubsan build" bash -c "meson setup build-asan --wipe -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug >/dev/null 2>&1 || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug >/dev/null; ninja -C build-asan"; then
    echo "=== asan unit tests ($(date +%T))"
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
      meson test -C build-asan --suite unit --num-processes 2 --print-errorlogs || true
    count_meson build-asan "asan"
  else
    failed=$((failed+1)); failures+=("sanitizer build")
  fi
fi

# 3. Fuzzers: each target for a bounded time under ASan.
if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  secs=${FUZZ_SECONDS:-30}
  if run_step "fuzz build" bash -c "CXX=clang++ meson setup build-fuzz --wipe -Dfuzzing=true -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null 2>&1 || CXX=clang++ meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false -Dcpp_args=-fsanitize=fuzzer-no-link >/dev/null; ninja -C build-fuzz \$(ninja -C build-fuzz -t targets all 2>/dev/null | grep -o '^tests/fuzz/fuzz_[a-z_]*' | sort -u)"; then
    for bin in build-fuzz/tests/fuzz/fuzz_*; do
      [ -f "$bin" ] && [ -x "$bin" ] || continue
      name=$(basename "$bin")
      corpus=$(mktemp -d)
      seeds="tests/fuzz/seeds/$name"
      [ -d "$seeds" ] && cp -r "$seeds"/. "$corpus"/ 2>/dev/null
      echo "=== fuzz $name for ${secs}s"
      if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
           -artifact_prefix="build-fuzz/$name-" "$corpus" > "build-fuzz/$name.log" 2>&1; then
        passed=$((passed+1)); echo "ok fuzz $name ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "build-fuzz/$name.log" | grep -o '[0-9]*$') runs)"
      else
        failed=$((failed+1)); failures+=("fuzz: $name"); tail -40 "build-fuzz/$name.log"
      fi
      rm -rf "$corpus"
    done
  else
    failed=$((failed+1)); failures+=("fuzz build")
  fi
fi

echo "=== finished ($(date +%T))"
if [ ${#failures[@]} -gt 0 ]; then
  echo "Failures:"; printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
