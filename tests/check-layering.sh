#!/usr/bin/env bash
# Fails when a source file includes a header from a layer above its own.
# Layers (lowest first): util < conf < qemu < qemu_snapshot < daemon; util < rpc < daemon.
#
# Includes are written from src/ ("util/result.hh"). A relative include
# ("../daemon/x.hh", "./x.hh", "conf/../daemon/x.hh") is normalised both ways
# the compiler may resolve it - against the including file's directory and
# against src/ - and each result must be allowed; one that leaves src/ is a
# violation. Before checking the tree, the script plants violations of both
# forms in a temporary copy of src/ and fails unless it catches them.
set -u
root=${1:-.}
src_dir="$root/src"
[ -d "$src_dir" ] || { echo "1..0 # SKIP no src"; exit 0; }
src_dir=$(cd "$src_dir" && pwd)

layers="util conf qemu qemu_snapshot rpc daemon"

allowed() {  # layer -> space-separated layers it may include
  case "$1" in
    util) echo "util" ;;
    conf) echo "util conf" ;;
    qemu) echo "util conf qemu" ;;
    qemu_snapshot) echo "util conf qemu qemu_snapshot" ;;
    rpc) echo "util rpc" ;;
    daemon) echo "util conf qemu qemu_snapshot rpc daemon" ;;
  esac
}

# Lexical normalisation of a relative path ("a/./b/../c" -> "a/c"); a result
# starting with ".." left the directory it was resolved from.
normalise() {
  local IFS=/ part out=()
  for part in $1; do
    case "$part" in
      ""|.) ;;
      ..) if [ ${#out[@]} -gt 0 ] && [ "${out[-1]}" != ".." ]; then unset 'out[-1]'; else out+=(..); fi ;;
      *) out+=("$part") ;;
    esac
  done
  echo "${out[*]}"
}

# Prints one line per include of a layer it may not use, for the tree below $1 (a src/ dir).
violations_of_layer() {  # src_dir layer
  local src=$1 layer=$2 ok_layers hit file inc resolved target
  ok_layers=" $(allowed "$layer") "
  while IFS= read -r hit; do
    file=${hit%%:*}
    [[ "${hit#*:}" =~ \#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] || continue
    inc=${BASH_REMATCH[1]}
    local candidates=()
    if [[ "/$inc/" == */./* || "/$inc/" == */../* ]]; then
      # The compiler looks next to the including file first, then in src/.
      resolved=$(normalise "${file%/*}/$inc")
      if [[ "$resolved" == ..* ]]; then
        echo "$file includes $inc (outside src/)"
        continue
      fi
      candidates+=("$resolved")
      resolved=$(normalise "$inc")
      [[ "$resolved" == ..* ]] || candidates+=("$resolved")
    else
      [[ "$inc" == */* ]] || continue        # same-directory include
      candidates+=("$inc")
    fi
    for resolved in "${candidates[@]}"; do
      target=${resolved%%/*}
      [ "$target" = "$resolved" ] && target=$layer   # resolves into the file's own directory
      case " $layers " in *" $target "*) ;; *) continue ;; esac
      case "$ok_layers" in *" $target "*) ;; *) echo "$file includes $inc"; break ;; esac
    done
  done < <(cd "$src" && grep -rHE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$layer" 2>/dev/null)
}

n=0; bad=0
report() {  # status description [diagnostics, shown on failure]
  n=$((n+1))
  if [ "$1" = 0 ]; then echo "ok $n - $2"; return 0; fi
  bad=$((bad+1))
  echo "not ok $n - $2"
  [ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/#   /'
  return 0
}

# Self-test: a copy of src/ with violations planted must be caught, in both
# the written-from-src/ form and the relative form.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src_dir" "$tmp/src"
for form in "daemon/driver_probe.hh" "../daemon/driver_probe.hh" "./../daemon/driver_probe.hh" \
            "conf/../daemon/driver_probe.hh"; do
  planted="$tmp/src/conf/zz_layering_probe.cc"
  printf '#include "%s"\n' "$form" > "$planted"
  found=$(violations_of_layer "$tmp/src" conf)
  grep -qxF "conf/zz_layering_probe.cc includes $form" <<<"$found"
  report $? "self-test: a planted #include \"$form\" in src/conf is caught" "$found"
  rm -f "$planted"
done
printf '#include "../../outside.hh"\n' > "$tmp/src/util/zz_layering_probe.cc"
found=$(violations_of_layer "$tmp/src" util)
grep -qxF "util/zz_layering_probe.cc includes ../../outside.hh (outside src/)" <<<"$found"
report $? "self-test: a relative include leaving src/ is caught" "$found"
rm -f "$tmp/src/util/zz_layering_probe.cc"
printf '#include "../util/result.hh"\n#include "./moment_tree.hh"\n#include "conf/./moment_tree.hh"\n' \
  > "$tmp/src/conf/zz_layering_probe.cc"
found=$(violations_of_layer "$tmp/src" conf)
[ -z "$found" ]
report $? "self-test: relative includes of allowed layers pass" "$found"

for layer in $layers; do
  [ -d "$src_dir/$layer" ] || continue
  found=$(violations_of_layer "$src_dir" "$layer")
  if [ -z "$found" ]; then
    report 0 "src/$layer includes only: $(allowed "$layer")"
  else
    report 1 "src/$layer includes a higher layer" "$found"
  fi
done
echo "1..$n"
[ "$bad" -eq 0 ]
