#!/usr/bin/env bash
# Benchmark: `image-update run --dry-run` over a generated GitOps tree shaped
# like real ones (scripts/bench-tree.py: Deployments, HelmReleases,
# kustomizations, Helm values and templates, Argo CD Applications with
# override files, ImageUpdaters, Flux policies; multi-document files, block
# scalars, flow collections, comments), answered from a registry snapshot,
# timed beside `grep -rc '$imagepolicy'` over the same tree. Runs alternate
# between the two and medians are compared: ratios, not absolute times, are
# what to compare on a small, noisy machine.
#
#   scripts/bench.sh [UNITS] [REPOSITORIES] [TAGS_PER_REPOSITORY] [RUNS]
#
# BIN=path/to/image-update times another build (a baseline) on the same tree.
#
# With COMMIT=1 it times `run --commit` instead, against a plain `run` of the
# same tree, in a fresh git repository where every manifest changes (the
# uniform tree of scripts/bench-uniform-tree.py, arguments MANIFESTS POLICIES
# TAGS; the hardening issue's 5,000-file case: `COMMIT=1 scripts/bench.sh 5000`).
set -euo pipefail

units=${1:-1000}
repositories=${2:-100}
tags=${3:-300}
runs=${4:-15}

cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-$PWD/target/release/image-update}

work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
tree=$work/tree
snapshot=$work/snapshot.json

if [ -n "${COMMIT:-}" ]; then
  python3 scripts/bench-uniform-tree.py "$work" "$units" "$repositories" "$tags"
  export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
  git -C "$tree" init -q -b main
  git -C "$tree" config gc.auto 0
  git -C "$tree" add -A
  git -C "$tree" -c user.name=bench -c user.email=bench@example.invalid commit -q -m initial
  cp -a "$tree" "$work/plain"
  ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
  plain_ms=$(ms "$bin" run "$work/plain" --registry-snapshot "$snapshot")
  commit_ms=$(ms "$bin" run "$tree" --registry-snapshot "$snapshot" --commit --author "Bench <bench@example.invalid>")
  changed=$(git -C "$tree" diff-tree --no-commit-id --name-only -r HEAD | wc -l)
  echo "image-update run:          ${plain_ms} ms"
  echo "image-update run --commit: ${commit_ms} ms ($changed files in the commit)"
  exit 0
fi

python3 scripts/bench-tree.py "$work" --units "$units" --repositories "$repositories" --tags "$tags"
run=("$bin" run "$tree" --dry-run --registry-snapshot "$snapshot" --output json
  --repo-url https://git.example.com/org/gitops.git)
grep=(grep -rc '$imagepolicy' "$tree")

markers=$(grep -rc '$imagepolicy' "$tree" | awk -F: '{s += $NF} END {print s}')
files=$(find "$tree" -type f | wc -l)
bytes=$(find "$tree" -type f -exec cat {} + | wc -c)
echo "tree: $units units, $files files, $((bytes / 1024)) KB, $markers markers; $repositories repositories x $tags tags"

ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1 || true
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

ms "${run[@]}" >/dev/null
ms "${grep[@]}" >/dev/null
run_times=() grep_times=()
for _ in $(seq "$runs"); do
  run_times+=("$(ms "${run[@]}")")
  grep_times+=("$(ms "${grep[@]}")")
done
run_ms=$(printf '%s\n' "${run_times[@]}" | median)
grep_ms=$(printf '%s\n' "${grep_times[@]}" | median)
summary=$("${run[@]}" | python3 -c '
import json, sys
r = json.load(sys.stdin)
apps = r.get("applications", [])
changed = sum(1 for a in apps for i in a["images"] if i.get("new"))
errors = sum(1 for p in r["problems"] if p["severity"] == "error")
print("%d policies, %d marker changes, %d applications (%d images changed), %d files, %d errors"
      % (len(r["policies"]), len(r["changes"]), len(apps), changed, len(r["files"]), errors))')

echo "image-update run --dry-run: ${run_ms} ms (median of $runs): $summary"
echo "grep -rc '\$imagepolicy':    ${grep_ms} ms (median of $runs)"
awk -v a="$run_ms" -v b="$grep_ms" 'BEGIN {
  if (b < 1) b = 1
  printf "ratio: %.2fx grep (target: within 3x)\n", a / b
}'
