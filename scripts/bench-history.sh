#!/usr/bin/env bash
# Benchmark: what reading the git history (rollback holds, promotion gates)
# costs `image-update run --dry-run` on a large repository. Builds, with one
# `git fast-import`, a repository of COMMITS commits (default 10,000) over
# FILES marked Deployments (default 500) and a staging folder: each commit
# changes one file's tag, a round of bumps by Flux's bot over every file,
# then a round of rollbacks by a person, and so on, so every file has a
# long value history and ends held; production's policy has a promotion
# gate on clusters/staging. Then times, alternating, runs with the history
# (default depth 1000, and DEPTH=… if given) and with `--ignore-holds` and
# the gate removed (no history read at all), and prints the medians.
#
#   scripts/bench-history.sh [COMMITS] [FILES] [RUNS]
set -euo pipefail

commits=${1:-10000}
files=${2:-500}
runs=${3:-7}

cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-$PWD/target/release/image-update}

work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
repo=$work/repo
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git init -q -b main "$repo"

python3 - "$commits" "$files" "$work" <<'EOF' | git -C "$repo" fast-import --quiet
import json, sys, time
commits, files, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
now = int(time.time())
policy = """apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: web, namespace: apps}
spec: {image: ghcr.io/acme/web}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata:
  name: web
  namespace: apps
  annotations:
    image-update.dev/promote-from: clusters/staging
    image-update.dev/soak: 24h
spec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}
"""
def deploy(n, tag):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web-{n}}}\nspec:\n"
            f"  template:\n    spec:\n      containers:\n        - name: web\n"
            f"          image: ghcr.io/acme/web:1.0.{tag} # {{\"$imagepolicy\": \"apps:web\"}}\n")
def blob(text):
    data = text.encode()
    return b"data %d\n" % len(data) + data + b"\n"
out = sys.stdout.buffer
tags = [0] * files
for c in range(commits):
    t = now - (commits - c) * 60
    bot = (c // files) % 2 == 0
    who = b"fluxcdbot <fluxcdbot@users.noreply.github.com>" if bot else b"Jane Dev <jane@example.com>"
    out.write(b"commit refs/heads/main\n")
    out.write(b"author %s %d +0000\ncommitter %s %d +0000\n" % (who, t, who, t))
    out.write(blob("Update from image update automation" if bot else "a person's change"))
    if c == 0:
        out.write(b"M 100644 inline clusters/production/policy.yaml\n" + blob(policy))
        for n in range(files):
            out.write(b"M 100644 inline clusters/production/web-%d.yaml\n" % n + blob(deploy(n, 0)))
        out.write(b"M 100644 inline clusters/staging/web.yaml\n" + blob(deploy("staging", 0)))
        out.write(b"M 100644 inline README.md\n" + blob("generated\n"))
    else:
        n = c % files
        tags[n] = tags[n] + 1 if bot else max(tags[n] - 1, 0)
        out.write(b"M 100644 inline clusters/production/web-%d.yaml\n" % n + blob(deploy(n, tags[n])))
        if c % 50 == 0:
            out.write(b"M 100644 inline clusters/staging/web.yaml\n" + blob(deploy("staging", c // 50)))
    out.write(b"\n")
json.dump({"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": [f"1.0.{i}" for i in range(400)]}}},
          open(f"{work}/snapshot.json", "w"))
EOF
git -C "$repo" checkout -q main
echo "repository: $(git -C "$repo" rev-list --count HEAD) commits, $(git -C "$repo" ls-files | wc -l) files"

# The same tree without the gate, for the run that reads no history.
plain=$work/plain
cp -r "$repo" "$plain"
sed -i '/image-update.dev/d; s/^  annotations:$//' "$plain/clusters/production/policy.yaml"

time_ms() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null || true
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

with=() without=() deep=()
for _ in $(seq "$runs"); do
  with+=("$(time_ms "$bin" run "$repo" --dry-run --registry-snapshot "$work/snapshot.json")")
  without+=("$(time_ms "$bin" run "$plain" --dry-run --ignore-holds --registry-snapshot "$work/snapshot.json")")
  if [ -n "${DEPTH:-}" ]; then
    deep+=("$(time_ms "$bin" run "$repo" --dry-run --history-depth "$DEPTH" --registry-snapshot "$work/snapshot.json")")
  fi
done
echo "with history (depth 1000): $(printf '%s\n' "${with[@]}" | median) ms"
echo "without (--ignore-holds, no gate): $(printf '%s\n' "${without[@]}" | median) ms"
if [ -n "${DEPTH:-}" ]; then
  echo "with history (depth $DEPTH): $(printf '%s\n' "${deep[@]}" | median) ms"
fi
"$bin" run "$repo" --dry-run --registry-snapshot "$work/snapshot.json" | tail -n 5
