#!/usr/bin/env bash
# Fails when a source file includes a header from a layer above its own.
# Layers (lowest first): util < conf < qemu < qemu_snapshot < daemon; util < rpc < daemon.
set -u
root=${1:-.}
cd "$root/src" || { echo "1..0 # SKIP no src"; exit 0; }

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

n=0; bad=0
for layer in util conf qemu qemu_snapshot rpc daemon; do
  [ -d "$layer" ] || continue
  ok_layers=$(allowed "$layer")
  violations=""
  while IFS= read -r hit; do
    file=${hit%%:*}
    inc=$(sed -E 's/.*#include[[:space:]]*"([^"]+)".*/\1/' <<<"${hit#*:}")
    target=${inc%%/*}
    [ "$target" = "$inc" ] && continue      # same-directory include
    case " util conf qemu qemu_snapshot rpc daemon " in *" $target "*) ;; *) continue ;; esac
    case " $ok_layers " in *" $target "*) ;; *) violations+="$file includes $inc"$'\n' ;; esac
  done < <(grep -rHE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$layer" 2>/dev/null)
  n=$((n+1))
  if [ -z "$violations" ]; then
    echo "ok $n - src/$layer includes only: $ok_layers"
  else
    bad=$((bad+1))
    echo "not ok $n - src/$layer includes a higher layer"
    printf '%s' "$violations" | sed 's/^/#   /'
  fi
done
echo "1..$n"
[ "$bad" -eq 0 ]
