#!/usr/bin/env bash
# Peak resident memory of `nst-bot stylize` per quality level (and at 1024 px), measured with GNU time.
# Uses a seeded random VGG19 (same shapes and cost as the real one), so it runs without a download.
# Usage: bash benchmarks/peak_memory.sh [ITERATIONS_CAP]   (from the repository root; needs /usr/bin/time)
# The cap shortens the runs: the peak is reached at the finest scale within its first iterations.
set -euo pipefail
python=${PYTHON:-python}
cap=${1:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" - "$work" <<'PY'
import sys
from pathlib import Path
from nst_engine.testing import write_random_vgg19
from tests.conftest import make_content, make_style
work = Path(sys.argv[1])
write_random_vgg19(work / "vgg19.pth")
make_content(1600, 1200).save(work / "content.png")
make_style(512).save(work / "style.png")
PY
echo "level     size  peak RSS (MB)  wall (s)"
for level in fast standard high 1024; do
  args=(--quality "${level/1024/high}")
  [[ $level == 1024 ]] && args+=(--size 1024)
  [[ -n $cap ]] && args+=(--iterations "$cap")
  /usr/bin/time -v -o "$work/time.txt" "$python" -m bot stylize "$work/content.png" --style "$work/style.png" \
    -o "$work/out.png" --weights "$work/vgg19.pth" --device cpu --seed 1 "${args[@]}" >/dev/null 2>&1
  peak_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$work/time.txt")
  size=$("$python" -c "from PIL import Image; print(max(Image.open('$work/out.png').size))")
  printf '%-9s %5s  %13d  %s\n' "$level" "$size" $((peak_kb / 1024)) "$wall"
done
